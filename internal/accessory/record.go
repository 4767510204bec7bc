package accessory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// Record is what a host remembers of an accessory's backups, beside
// them (record.json in the accessory's directory): how each kind of run
// last went, so that a failure is never silent.
type Record struct {
	// LastGood is the newest backup made, by the timer or by hand.
	LastGood *hostproto.BackupInfo `json:"last_good,omitempty"`
	// LastFailure is the newest failed backup, with its cause.
	LastFailure *hostproto.BackupFailure `json:"last_failure,omitempty"`
	// LastScheduled is how the timer's newest run went.
	LastScheduled *hostproto.BackupRun `json:"last_scheduled,omitempty"`
	// LastVerify is the newest verify drill.
	LastVerify *hostproto.Verification `json:"last_verify,omitempty"`
	// Verified are the backups a drill restored and found whole, by
	// file, with when.
	Verified map[string]time.Time `json:"verified,omitempty"`
	// LastOffsite is how the newest copy to the bucket went.
	LastOffsite *hostproto.BackupRun `json:"last_offsite,omitempty"`
	// RestoredFrom is the backup the newest restore used.
	RestoredFrom string `json:"restored_from,omitempty"`
}

func recordFile(p Place) string { return filepath.Join(p.Dir, "record.json") }

// ReadRecord reads the accessory's record; a host without one has an
// empty one.
func ReadRecord(p Place) (Record, error) {
	var r Record
	b, err := os.ReadFile(recordFile(p))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read backup record: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("read %s: %w", recordFile(p), err)
	}
	return r, nil
}

// updateRecord changes the record under a lock: two backups may end at
// once (the timer's and one by hand).
func updateRecord(p Place, change func(r *Record)) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("backup record: %w", err)
	}
	lock, err := filelock.Acquire(context.Background(), filepath.Join(p.Dir, "record.lock"), time.Minute)
	if err != nil {
		return fmt.Errorf("backup record: %w", err)
	}
	defer lock.Release()
	r, err := ReadRecord(p)
	if err != nil {
		return err
	}
	change(&r)
	b, _ := json.MarshalIndent(r, "", "  ") // plain structs: cannot fail
	return atomicfile.Write(recordFile(p), append(b, '\n'), 0o600)
}

// recordBackup records how a backup run went.
func recordBackup(p Place, bi hostproto.BackupInfo, scheduled bool, failed error) error {
	now := time.Now().UTC().Truncate(time.Second)
	return updateRecord(p, func(r *Record) {
		if failed != nil {
			r.LastFailure = &hostproto.BackupFailure{At: now, Error: failed.Error(), Scheduled: scheduled}
		} else {
			r.LastGood = &bi
		}
		if scheduled {
			run := &hostproto.BackupRun{At: now, File: bi.File}
			if failed != nil {
				run.Error, run.File = failed.Error(), ""
			}
			r.LastScheduled = run
		}
	})
}
