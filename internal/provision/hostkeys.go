package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// installHostKey is run as root on a host to put a new ed25519 host key
// in place of the one from the user data: written beside it, synced,
// renamed over it; other key types removed; sshd checked and reloaded, so
// that new connections get the new key. The private key comes on stdin.
const installHostKey = `set -e
umask 077
cd /etc/ssh
cat > .hoist-host-key
printf '%%s\n' %s > .hoist-host-key.pub
chmod 600 .hoist-host-key
chmod 644 .hoist-host-key.pub
sync .hoist-host-key .hoist-host-key.pub
mv -f .hoist-host-key ssh_host_ed25519_key
mv -f .hoist-host-key.pub ssh_host_ed25519_key.pub
rm -f ssh_host_rsa_key ssh_host_rsa_key.pub ssh_host_ecdsa_key ssh_host_ecdsa_key.pub ssh_host_dsa_key ssh_host_dsa_key.pub
sshd -t
systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service
`

// replaceHostKey gives the host a new host key over conn, whose key was
// verified, and records it: first as a second accepted key, so that an
// interruption anywhere leaves hoist able to connect; then alone.
func (e *engine) replaceHostKey(ctx context.Context, h *Host, conn transport.Conn) error {
	priv, pub, err := transport.NewHostKey()
	if err != nil {
		return err
	}
	h.NextHostKey = pub
	if err := e.recordKeys(h); err != nil {
		return err
	}
	cmd := transport.Sudo(conn) + "sh -c " + transport.Quote(fmt.Sprintf(installHostKey, transport.Quote(pub)))
	var stderr strings.Builder
	if err := conn.Run(ctx, cmd, strings.NewReader(priv), nil, &stderr); err != nil {
		return fmt.Errorf("replace the host key of %s: %w", h.Name, err)
	}
	h.HostKey, h.NextHostKey, h.KeyReplaced = pub, "", true
	if err := e.recordKeys(h); err != nil {
		return err
	}
	fmt.Fprintf(e.o.Log, "%s: host key replaced over the verified connection; the key from the user data is no longer accepted\n", h.Name)
	return nil
}

// recordKeys writes the host's accepted keys to hoist's known_hosts and
// the state, in that order of safety: both name every key the host may
// present.
func (e *engine) recordKeys(h *Host) error {
	if h.Addr() == "" {
		return e.st.Save()
	}
	keys := strings.TrimSpace(h.HostKey + "\n" + h.NextHostKey)
	if err := transport.SetKnownHosts(e.o.KnownHosts, map[string]string{h.Addr(): keys}); err != nil {
		return err
	}
	return e.st.Save()
}

// connect dials a new host, waiting while it boots: sshd may not listen
// yet, or cloud-init may not have made the user. A refused host key
// stops the wait at once: it is never retried.
func (e *engine) connect(ctx context.Context, h *Host) (transport.Conn, error) {
	deadline := time.Now().Add(e.o.BootTimeout)
	var last error
	for attempt := 0; ; attempt++ {
		conn, err := e.o.Dial(ctx, e.target(h))
		if err == nil {
			return conn, nil
		}
		var hk *transport.HostKeyError
		if errors.As(err, &hk) {
			return nil, usererr.Wrap(err, "%s did not present the host key hoist gave it", h.Name).
				WithHint("do not use this host: something else answers at %s. `hoist destroy` removes it", h.Addr())
		}
		last = err
		if time.Now().After(deadline) {
			return nil, usererr.Wrap(last, "%s (%s) did not accept hoist's SSH connection within %s", h.Name, h.Addr(), e.o.BootTimeout).
				WithHint("run hoist provision again to resume; the host may still be booting")
		}
		if attempt%10 == 0 {
			fmt.Fprintf(e.o.Log, "%s: waiting for SSH at %s (%v)\n", h.Name, h.Addr(), last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (e *engine) target(h *Host) string {
	if e.st.User == "" {
		return h.Addr()
	}
	return e.st.User + "@" + h.Addr()
}
