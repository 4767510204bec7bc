package accessory

import (
	"compress/gzip"
	"context"
	"fmt"
	"github.com/hoistdev/hoist/internal/hostproto"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Restore replaces the accessory's database with backup file, in steps
// that leave the database as it was until the last one:
//
//  1. the whole backup is read and verified (Verify);
//  2. the disk must have room for it beside the database it replaces;
//  3. a database holding anything needs confirm, and is backed up first;
//  4. the backup is loaded, in one transaction, into a scratch database
//     owned by the app's role, as that role (load);
//  5. only then the scratch database takes the database's name in one
//     transaction (swap): the app's connections are closed once, and
//     it sees the old data or the new.
//
// It returns the name of the backup made of what the database held
// ("" when it held nothing).
func Restore(ctx context.Context, s *hostproto.AccessorySpec, p Place, file string, confirm bool, log io.Writer) (string, error) {
	b, f, err := backuperOf(s)
	if err != nil {
		return "", err
	}
	if !hostproto.ValidBackupFile(file) {
		return "", fmt.Errorf("%q is not a backup file name", file)
	}
	path := filepath.Join(p.Backups, file)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("there is no backup %s on this host: hoist accessory backups lists them", file)
	}
	fmt.Fprintf(log, "verifying %s\n", file)
	meta, size, err := verifyFile(path, f)
	if err != nil {
		return "", err
	}
	if err := checkRoom(b.dataDir(), roomFor(size), diskFree); err != nil {
		return "", err
	}
	db := s.Database
	exists, n, err := b.tables(ctx)
	if err != nil {
		return "", err
	}
	kept := ""
	if n > 0 {
		if !confirm {
			return "", &hostproto.ConfirmError{Database: db, Tables: n}
		}
		before, err := backup(ctx, s, b, f, p, backupNames(s, time.Now(), "-before-restore"))
		if err != nil {
			return "", fmt.Errorf("back up %s before the restore: %w; nothing was changed", db, err)
		}
		kept = before.File
		fmt.Fprintf(log, "what %s held is kept in backup %s\n", db, before.File)
	}
	scratch := db + "__restore"
	fmt.Fprintf(log, "loading %s (%s %s, made %s) into %s\n", file, f.product, meta.Version, meta.Created.Format(time.RFC3339), scratch)
	if err := loadFile(ctx, b, path, scratch, p); err != nil {
		b.dropScratch(ctx, scratch)
		return kept, fmt.Errorf("restore of %s failed: %w; the database was not changed", file, err)
	}
	if err := b.swap(ctx, scratch, exists); err != nil {
		b.dropScratch(ctx, scratch)
		return kept, err
	}
	fmt.Fprintf(log, "%s restored from %s\n", db, file)
	if err := updateRecord(p, func(r *Record) { r.RestoredFrom = file }); err != nil {
		return kept, err
	}
	return kept, prune(p.Backups, s.BackupKeep, spared(p, file)...)
}

// loadFile loads the SQL of the backup at path into scratch (load).
func loadFile(ctx context.Context, b backuper, path, scratch string, p Place) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	zr.Multistream(false)
	return b.load(ctx, zr, scratch, p)
}

// VerifyRestore is the drill that makes a backup count as good: it
// restores backup file (the newest of the accessory's own for "") into
// a scratch database, as any restore does, counts each table's rows
// there and compares them with the counts recorded when it was dumped,
// then drops the scratch database. The app's database is not touched.
// The result is recorded, and returned; err is for a drill that could
// not run at all.
func VerifyRestore(ctx context.Context, s *hostproto.AccessorySpec, p Place, file string, log io.Writer) (hostproto.Verification, error) {
	b, f, err := backuperOf(s)
	if err != nil {
		return hostproto.Verification{}, err
	}
	if file == "" {
		bs, err := ListBackups(p.Backups)
		if err != nil {
			return hostproto.Verification{}, err
		}
		for _, b := range bs {
			if b.Kind == KindBackup {
				file = b.File
			}
		}
		if file == "" {
			return hostproto.Verification{}, fmt.Errorf("accessory %s has no backup to verify on this host: hoist accessory backup %s makes one", s.Name, s.Name)
		}
	}
	if !hostproto.ValidBackupFile(file) {
		return hostproto.Verification{}, fmt.Errorf("%q is not a backup file name", file)
	}
	path := filepath.Join(p.Backups, file)
	if _, err := os.Stat(path); err != nil {
		return hostproto.Verification{}, fmt.Errorf("there is no backup %s on this host: hoist accessory backups lists them", file)
	}
	v := hostproto.Verification{At: time.Now().UTC().Truncate(time.Second), File: file}
	fmt.Fprintf(log, "verifying %s: restoring it into a scratch database\n", file)
	v.OK, v.Tables, v.Detail = drill(ctx, s, b, f, p, path)
	err = updateRecord(p, func(r *Record) {
		r.LastVerify = &v
		if v.OK {
			if r.Verified == nil {
				r.Verified = map[string]time.Time{}
			}
			r.Verified[file] = v.At
		}
		for f := range r.Verified { // pruned since
			if _, err := os.Stat(filepath.Join(p.Backups, f)); err != nil {
				delete(r.Verified, f)
			}
		}
	})
	return v, err
}

// drill restores the backup at path into the verify scratch database
// and compares its rows; it reports whether all matched, how many
// tables it compared, and what went wrong.
func drill(ctx context.Context, s *hostproto.AccessorySpec, b backuper, f *dumpFormat, p Place, path string) (bool, int, string) {
	meta, size, err := verifyFile(path, f)
	if err != nil {
		return false, 0, err.Error()
	}
	if err := checkRoom(b.dataDir(), roomFor(size), diskFree); err != nil {
		return false, 0, err.Error()
	}
	scratch := s.Database + "__verify"
	defer b.dropScratch(ctx, scratch)
	if err := loadFile(ctx, b, path, scratch, p); err != nil {
		return false, 0, "the restore failed: " + err.Error()
	}
	got, err := b.rowCounts(ctx, p, scratch)
	if err != nil {
		return false, 0, "count rows: " + err.Error()
	}
	if meta.Rows == nil {
		return true, 0, "restored; the backup records no row counts (made by an older hoist), so none were compared"
	}
	var wrong []string
	for table, want := range meta.Rows {
		if n, ok := got[table]; !ok {
			wrong = append(wrong, fmt.Sprintf("%s is missing (%d rows dumped)", table, want))
		} else if n != want {
			wrong = append(wrong, fmt.Sprintf("%s has %d rows, %d were dumped", table, n, want))
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 {
		return false, len(meta.Rows), strings.Join(wrong, "; ")
	}
	return true, len(meta.Rows), ""
}
