package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Lock says who holds an app's deploy lock on a host.
type Lock struct {
	Holder string    `json:"holder"` // user@machine and a token
	Since  time.Time `json:"since"`
	Op     string    `json:"op,omitempty"` // deploy, rollback...
}

// LockedError is returned when someone else holds the lock.
type LockedError struct{ Lock Lock }

func (e *LockedError) Error() string {
	return fmt.Sprintf("locked by %s since %s (%s)", e.Lock.Holder, e.Lock.Since.Format(time.RFC3339), e.Lock.Op)
}

// AcquireLock takes the deploy lock of l for lk.Holder. The lock's
// content is written to a temporary file first and then hard-linked into
// place: the link is the atomic test-and-set, and a reader never sees a
// lock file that is not complete.
func AcquireLock(l Layout, lk Lock) error {
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	b, _ := json.Marshal(lk) // plain struct: cannot fail
	tmp := l.LockFile() + ".tmp-" + randomSuffix()
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer os.Remove(tmp)
	err := os.Link(tmp, l.LockFile())
	if errors.Is(err, os.ErrExist) {
		held, rerr := ReadLock(l)
		if rerr != nil {
			return fmt.Errorf("lock: %w", rerr)
		}
		if held == nil {
			return AcquireLock(l, lk) // released in between
		}
		if held.Holder == lk.Holder {
			return nil // re-entrant for the same deploy
		}
		return &LockedError{Lock: *held}
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return syncDir(l.Root)
}

// ReadLock returns the current lock, or nil when the app is not locked.
func ReadLock(l Layout) (*Lock, error) {
	b, err := os.ReadFile(l.LockFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lk Lock
	if json.Unmarshal(b, &lk) != nil || lk.Holder == "" {
		return &Lock{Holder: "unknown (unreadable lock file " + l.LockFile() + ")"}, nil
	}
	return &lk, nil
}

// ReleaseLock removes the lock if holder holds it, or whoever holds it
// when force is set.
func ReleaseLock(l Layout, holder string, force bool) error {
	held, err := ReadLock(l)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	if held == nil {
		return nil
	}
	if !force && held.Holder != holder {
		return &LockedError{Lock: *held}
	}
	if err := os.Remove(l.LockFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}
