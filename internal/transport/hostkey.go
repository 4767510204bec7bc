package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"

	"github.com/hoistdev/hoist/internal/usererr"
)

// trustMu serialises appends to trust files within this process; hosts
// are dialled in parallel.
var trustMu sync.Mutex

// hostKeys checks a host's key against the known_hosts files and records
// an unknown one in the trust file.
type hostKeys struct {
	o     Options
	db    *knownhosts.HostKeyDB
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

func newHostKeys(o Options) (*hostKeys, error) {
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
	h := &hostKeys{o: o}
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
		if h.o.TrustFile == "" {
			return h.refuse(usererr.New("host key of %s is not known (%s %s)", target, key.Type(), ssh.FingerprintSHA256(key)).
				WithHint("add it to ~/.ssh/known_hosts, for example by connecting once with ssh"))
		}
		if err := h.record(hostname, remote, key); err != nil {
			return h.refuse(err)
		}
		if h.o.Log != nil {
			fmt.Fprintf(h.o.Log, "recorded new host key for %s (%s %s) in %s\n", target, key.Type(), ssh.FingerprintSHA256(key), h.o.TrustFile)
		}
		h.accept(key)
		return nil
	}
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
