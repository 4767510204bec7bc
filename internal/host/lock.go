package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// AcquireLock takes the deploy lock of l for lk.Holder. The lock's
// content is written to a temporary file first and then hard-linked into
// place: the link is the atomic test-and-set, and a reader never sees a
// lock file that is not complete.
func AcquireLock(l Layout, lk hostproto.Lock) error {
	return takeOverLock(l, lk, "")
}

// takeOverLock is AcquireLock that also replaces a lock held by stale
// (when not ""): a holder the caller knows is gone. Taking, taking over
// and releasing take turns under a flock of their own, so that two
// hoists taking over one stale lock cannot both think they hold it.
func takeOverLock(l Layout, lk hostproto.Lock, stale string) error {
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	guard, err := lockGuard(l)
	if err != nil {
		return err
	}
	defer guard.Release()
	b, _ := json.Marshal(lk) // plain struct: cannot fail
	tmp := l.LockFile() + ".tmp-" + randomSuffix()
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer os.Remove(tmp)
	held, err := ReadLock(l)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	switch {
	case held == nil:
		// The link is the test-and-set for a hoist without the guard.
		if err := os.Link(tmp, l.LockFile()); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	case held.Holder == lk.Holder:
		return nil // re-entrant for the same deploy
	case stale != "" && held.Holder == stale:
		if err := os.Rename(tmp, l.LockFile()); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	default:
		return &hostproto.LockedError{Lock: *held}
	}
	return syncDir(l.Root)
}

// lockGuard serializes the changes of an app's deploy lock on a host.
func lockGuard(l Layout) (*filelock.Lock, error) {
	g, err := filelock.Acquire(context.Background(), l.LockFile()+".guard", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return g, nil
}

// ReadLock returns the current lock, or nil when the app is not locked.
func ReadLock(l Layout) (*hostproto.Lock, error) {
	b, err := os.ReadFile(l.LockFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lk hostproto.Lock
	if json.Unmarshal(b, &lk) != nil || lk.Holder == "" {
		return &hostproto.Lock{Holder: "unknown (unreadable lock file " + l.LockFile() + ")"}, nil
	}
	return &lk, nil
}

// releaseLock removes the lock if holder holds it, or whoever holds it
// when force is set.
func releaseLock(l Layout, holder string, force bool) error {
	if _, err := os.Stat(l.Root); errors.Is(err, os.ErrNotExist) {
		return nil // nothing was ever locked (or set up) here
	}
	guard, err := lockGuard(l)
	if err != nil {
		return err
	}
	defer guard.Release()
	held, err := ReadLock(l)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	if held == nil {
		return nil
	}
	if !force && held.Holder != holder {
		return &hostproto.LockedError{Lock: *held}
	}
	if err := os.Remove(l.LockFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}
