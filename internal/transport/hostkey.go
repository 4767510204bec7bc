package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"

	"github.com/hoistdev/hoist/internal/usererr"
)

// trustMu serialises appends to trust files within this process; hosts
// are dialled in parallel. askMu serialises the questions, so that a
// person is asked about one host at a time, and about a host once.
var trustMu, askMu sync.Mutex

// hostKeys checks a host's key against the known_hosts files, and
// records a host never seen before in the trust file once accepted: by
// the person at the terminal, or by AcceptNewHostKeys or ssh_config's
// StrictHostKeyChecking, as OpenSSH does.
type hostKeys struct {
	o      Options
	strict string // ssh_config's StrictHostKeyChecking for the host, lowercase
	db     *knownhosts.HostKeyDB
	// conn is the connection being checked: its deadline is lifted
	// while a person reads the fingerprint.
	conn  net.Conn
	mu    sync.Mutex
	fault error  // why the callback refused, for a clear error after the handshake
	key   string // the fingerprint of the key accepted
}

// accepted is the SHA256 fingerprint of the host key the callback
// accepted.
func (h *hostKeys) accepted() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.key
}

func (h *hostKeys) accept(key ssh.PublicKey) {
	h.mu.Lock()
	h.key = ssh.FingerprintSHA256(key)
	h.mu.Unlock()
}

// newHostKeys checks host keys with o's files; strict is ssh_config's
// StrictHostKeyChecking for the host.
func newHostKeys(o Options, strict string) (*hostKeys, error) {
	files := o.KnownHostsFiles
	if files == nil {
		files = []string{filepath.Join(o.home(), ".ssh", "known_hosts")}
	}
	if o.TrustFile != "" {
		files = append(files, o.TrustFile)
	}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	h := &hostKeys{o: o, strict: strings.ToLower(strict)}
	if len(existing) > 0 {
		db, err := knownhosts.NewDB(existing...)
		if err != nil {
			return nil, usererr.Wrap(err, "cannot read known_hosts").WithHint("fix or remove the broken line")
		}
		h.db = db
	}
	return h, nil
}

func (h *hostKeys) algorithms(addr string) []string {
	if h.db == nil {
		return nil
	}
	return h.db.HostKeyAlgorithms(addr)
}

func (h *hostKeys) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fault
}

// HostKeyError is a host key that was refused: changed, unknown where
// nothing is trusted on first use, or unreadable known_hosts. Callers
// that wait for a host to come up stop at once on it.
type HostKeyError struct{ Err error }

func (e *HostKeyError) Error() string { return e.Err.Error() }
func (e *HostKeyError) Unwrap() error { return e.Err }

func (h *hostKeys) refuse(err error) error {
	err = &HostKeyError{Err: err}
	h.mu.Lock()
	h.fault = err
	h.mu.Unlock()
	return err
}

func (h *hostKeys) callback(target string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if h.db != nil {
			err := h.db.HostKeyCallback()(hostname, remote, key)
			if err == nil {
				h.accept(key)
				return nil
			}
			if knownhosts.IsHostKeyChanged(err) {
				where := ""
				var ke *xknownhosts.KeyError
				if errors.As(err, &ke) && len(ke.Want) > 0 {
					where = fmt.Sprintf(" (recorded in %s:%d)", ke.Want[0].Filename, ke.Want[0].Line)
				}
				return h.refuse(usererr.New("host key for %s has changed%s: now %s %s; refusing to connect",
					target, where, key.Type(), ssh.FingerprintSHA256(key)).
					WithHint("someone may be intercepting the connection; if the host was really reinstalled, remove the old key with `ssh-keygen -R %s -f FILE` and connect again", knownhosts.Normalize(hostname)))
			}
			if !knownhosts.IsHostUnknown(err) {
				return h.refuse(usererr.Wrap(err, "cannot check the host key of %s", target))
			}
		}
		return h.unknown(target, hostname, remote, key)
	}
}

// unknown decides about a host no known_hosts file names.
func (h *hostKeys) unknown(target, hostname string, remote net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	if h.o.TrustFile == "" {
		return h.refuse(usererr.New("host key of %s is not known (%s %s)", target, key.Type(), fp).
			WithHint("add it to ~/.ssh/known_hosts, for example by connecting once with ssh"))
	}
	switch {
	case h.o.AcceptNewHostKeys || h.strict == "accept-new" || h.strict == "no" || h.strict == "off":
	case h.strict == "yes":
		return h.refuse(usererr.New("host key of %s is not known (%s %s), and ssh_config says StrictHostKeyChecking yes", target, key.Type(), fp).
			WithHint("check the fingerprint with the host's administrator, then add the key to ~/.ssh/known_hosts (for example by connecting once with ssh)"))
	case h.o.ConfirmHostKey == nil:
		return h.refuse(usererr.New("host key of %s is not known (%s %s), and there is no terminal to ask on", target, key.Type(), fp).
			WithHint("check the fingerprint with the host's administrator, then run hoist once on a terminal and answer yes, pass --accept-new-host-keys, set StrictHostKeyChecking accept-new for the host in ~/.ssh/config, or add the key to ~/.ssh/known_hosts"))
	default:
		// A person may take longer than the handshake's deadline to
		// read the fingerprint, and to answer about the hosts before.
		if h.conn != nil {
			h.conn.SetDeadline(time.Time{})
			defer func() { h.conn.SetDeadline(time.Now().Add(h.o.ConnectTimeout)) }()
		}
		askMu.Lock()
		defer askMu.Unlock()
		// Accepted (or changed) while this one waited: the same host
		// named twice, dialled at once.
		switch h.recorded(hostname, remote, key) {
		case errRecordedSame:
			h.accept(key)
			return nil
		case errRecordedOther:
			return h.refuse(usererr.New("host key for %s has changed since it was accepted a moment ago: now %s %s; refusing to connect", target, key.Type(), fp).
				WithHint("someone may be intercepting the connection"))
		}
		q := fmt.Sprintf("The authenticity of host %s (%s) can't be established.\n%s key fingerprint is %s.\nAre you sure you want to continue connecting (yes/no)? ",
			target, remote, key.Type(), fp)
		yes, err := h.o.ConfirmHostKey(q)
		if err != nil {
			return h.refuse(usererr.Wrap(err, "host key of %s is not known, and asking about it failed", target))
		}
		if !yes {
			return h.refuse(usererr.New("host key of %s (%s %s) was not accepted", target, key.Type(), fp).
				WithHint("connect again and answer yes once you have checked the fingerprint with the host's administrator"))
		}
	}
	if err := h.record(hostname, remote, key); err != nil {
		return h.refuse(err)
	}
	if h.o.Log != nil {
		fmt.Fprintf(h.o.Log, "recorded new host key for %s (%s %s) in %s\n", target, key.Type(), fp, h.o.TrustFile)
	}
	h.accept(key)
	return nil
}

var (
	errRecordedSame  = errors.New("recorded with this key")
	errRecordedOther = errors.New("recorded with another key")
)

// recorded looks the host up in the trust file as it is now.
func (h *hostKeys) recorded(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if _, err := os.Stat(h.o.TrustFile); err != nil {
		return nil
	}
	db, err := knownhosts.NewDB(h.o.TrustFile)
	if err != nil {
		return nil
	}
	switch err := db.HostKeyCallback()(hostname, remote, key); {
	case err == nil:
		return errRecordedSame
	case knownhosts.IsHostKeyChanged(err):
		return errRecordedOther
	}
	return nil
}

func (h *hostKeys) record(hostname string, remote net.Addr, key ssh.PublicKey) error {
	trustMu.Lock()
	defer trustMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(h.o.TrustFile), 0o700); err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	f, err := os.OpenFile(h.o.TrustFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	if err := knownhosts.WriteKnownHost(f, hostname, remote, key); err != nil {
		f.Close()
		return fmt.Errorf("record host key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("record host key: %w", err)
	}
	return f.Close()
}
