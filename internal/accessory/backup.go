package accessory

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/bytesize"
)

// A backup of a PostgreSQL accessory is pg_dump's plain SQL, gzipped:
// gzip's CRC-32 and length detect a file that is cut short or damaged,
// pg_dump's closing line a dump that stopped early, and the gzip
// header's comment says what the file holds. Restore reads the whole
// file and checks all three before it touches the database. Backups are
// written to a temporary file and renamed into place once complete, so
// that the backups directory only ever holds whole ones.

// BackupExt ends every backup's file name.
const BackupExt = ".sql.gz"

// dumpComplete is the line pg_dump writes once everything is dumped.
const dumpComplete = "-- PostgreSQL database dump complete"

var backupFile = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.sql\.gz$`)

// ValidBackupFile reports whether name can name a backup on a host: a
// plain file name, no directory.
func ValidBackupFile(name string) bool { return backupFile.MatchString(name) }

// Meta is what a backup says about itself, in its gzip header.
type Meta struct {
	App       string    `json:"app"`
	Accessory string    `json:"accessory"`
	Database  string    `json:"database"`
	Version   string    `json:"version"` // PostgreSQL's
	Created   time.Time `json:"created"`
}

// BackupInfo is one backup on a host.
type BackupInfo struct {
	File    string    `json:"file"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// BadBackupError says why a backup cannot be restored.
type BadBackupError struct {
	File, Reason string
}

func (e *BadBackupError) Error() string {
	return fmt.Sprintf("backup %s cannot be used: %s; nothing was changed", e.File, e.Reason)
}

// backupName names a backup of s made at t.
func backupName(s *Spec, t time.Time, suffix string) string {
	return s.Name + "-" + t.UTC().Format("20060102T150405Z") + suffix + BackupExt
}

// Backup dumps the accessory's database into a new backup, then keeps
// only the newest BackupKeep backups.
func Backup(ctx context.Context, s *Spec, p Place) (BackupInfo, error) {
	pg, err := postgresOf(s)
	if err != nil {
		return BackupInfo{}, err
	}
	bi, err := pg.backup(ctx, p, backupName(s, time.Now(), ""))
	if err != nil {
		return bi, err
	}
	return bi, prune(p.Backups, s.BackupKeep)
}

func postgresOf(s *Spec) (*postgres, error) {
	if s.Service != "postgresql" {
		return nil, fmt.Errorf("accessory %s is %s: hoist backs up and restores postgresql accessories; %s keeps its data in its own files", s.Name, s.Service, s.Service)
	}
	return openPostgres(s)
}

// backup writes the database's dump to file in the backups directory.
func (pg *postgres) backup(ctx context.Context, p Place, file string) (BackupInfo, error) {
	if err := os.MkdirAll(p.Backups, 0o700); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	path := filepath.Join(p.Backups, file)
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return BackupInfo{}, err
	}
	defer f.Abort()
	meta := Meta{App: pg.s.App, Accessory: pg.s.Name, Database: pg.s.Database, Version: pg.ver, Created: time.Now().UTC().Truncate(time.Second)}
	zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression) // a valid level: cannot fail
	comment, _ := json.Marshal(meta)
	zw.Header = gzip.Header{Name: strings.TrimSuffix(file, ".gz"), Comment: string(comment), ModTime: meta.Created}
	var end tail
	err = pg.run(ctx, "pg_dump", []string{"--no-owner", "--no-privileges", "-d", pg.s.Database}, nil, io.MultiWriter(zw, &end))
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup of %s: %w", pg.s.Name, err)
	}
	if !strings.Contains(end.String(), dumpComplete) {
		return BackupInfo{}, fmt.Errorf("backup of %s: pg_dump exited without finishing the dump", pg.s.Name)
	}
	if err := zw.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup of %s: %w", pg.s.Name, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup of %s: %w", pg.s.Name, err)
	}
	if err := f.Commit(); err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{File: file, Size: size, Created: meta.Created}, nil
}

// Verify reads a whole backup and checks it: gzip's checksum and length,
// nothing after its end, pg_dump's closing line. It returns what the
// backup says of itself and the size of the SQL in it.
func Verify(r io.Reader, file string) (Meta, int64, error) {
	bad := func(reason string) (Meta, int64, error) {
		return Meta{}, 0, &BadBackupError{File: file, Reason: reason}
	}
	br := bufio.NewReader(r)
	zr, err := gzip.NewReader(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("it is empty or cut short")
		}
		return bad("it is not a gzip file, so not a hoist backup")
	}
	zr.Multistream(false)
	var meta Meta
	if json.Unmarshal([]byte(zr.Header.Comment), &meta) != nil || meta.Accessory == "" {
		return bad("it has no hoist header: it was not made by hoist accessory backup")
	}
	var end tail
	n, err := io.Copy(&end, zr)
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad(fmt.Sprintf("it is cut short: it ends after %d bytes of SQL, before its gzip trailer", n))
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return bad("its content is damaged (" + err.Error() + ")")
	case err != nil:
		return Meta{}, 0, fmt.Errorf("read backup %s: %w", file, err)
	}
	if _, err := br.Peek(1); err == nil {
		return bad("it has bytes after its end")
	}
	if !strings.Contains(end.String(), dumpComplete) {
		return bad("the dump in it stopped before its end")
	}
	return meta, n, nil
}

// VerifyFile is Verify of the file at path.
func VerifyFile(path string) (Meta, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, 0, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	return Verify(f, filepath.Base(path))
}

// ListBackups lists the backups in dir, oldest first.
func ListBackups(dir string) ([]BackupInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []BackupInfo
	for _, e := range ents {
		if !e.Type().IsRegular() || !ValidBackupFile(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, BackupInfo{File: e.Name(), Size: fi.Size(), Created: created(filepath.Join(dir, e.Name()), fi.ModTime())})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].File < out[j].File
	})
	return out, nil
}

// created is when a backup was made, from its header; else fallback.
func created(path string, fallback time.Time) time.Time {
	f, err := os.Open(path)
	if err != nil {
		return fallback.UTC()
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fallback.UTC()
	}
	var m Meta
	if json.Unmarshal([]byte(zr.Header.Comment), &m) != nil || m.Created.IsZero() {
		return fallback.UTC()
	}
	return m.Created
}

// prune removes all but the newest keep backups in dir.
func prune(dir string, keep int) error {
	bs, err := ListBackups(dir)
	if err != nil || keep < 1 || len(bs) <= keep {
		return err
	}
	for _, b := range bs[:len(bs)-keep] {
		if err := os.Remove(filepath.Join(dir, b.File)); err != nil {
			return fmt.Errorf("prune backups: %w", err)
		}
	}
	return atomicfile.SyncDir(dir)
}

// OpenBackup opens backup file of p, for fetching it.
func OpenBackup(p Place, file string) (*os.File, error) {
	if !ValidBackupFile(file) {
		return nil, fmt.Errorf("%q is not a backup file name", file)
	}
	f, err := os.Open(filepath.Join(p.Backups, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("there is no backup %s on this host: hoist accessory backups lists them", file)
	}
	return f, err
}

// ReceiveBackup stores a backup sent from elsewhere (size bytes from r)
// under file, once it is whole and verified.
func ReceiveBackup(p Place, file string, size int64, r io.Reader) (BackupInfo, error) {
	if !ValidBackupFile(file) {
		return BackupInfo{}, fmt.Errorf("%q is not a backup file name (NAME.sql.gz)", file)
	}
	if err := os.MkdirAll(p.Backups, 0o700); err != nil {
		return BackupInfo{}, fmt.Errorf("receive backup: %w", err)
	}
	path := filepath.Join(p.Backups, file)
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return BackupInfo{}, err
	}
	defer f.Abort()
	if n, err := io.CopyN(f, r, size); err != nil {
		return BackupInfo{}, fmt.Errorf("receive backup %s: the upload ended after %d of %d bytes: %w", file, n, size, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return BackupInfo{}, fmt.Errorf("receive backup: %w", err)
	}
	meta, _, err := Verify(f, file)
	if err != nil {
		return BackupInfo{}, err
	}
	if err := f.Commit(); err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{File: file, Size: size, Created: meta.Created}, nil
}

// ConfirmError says that a restore would replace data and was not
// confirmed.
type ConfirmError struct {
	Database string `json:"database"`
	Tables   int    `json:"tables"`
}

func (e *ConfirmError) Error() string {
	return fmt.Sprintf("database %s is not empty (%d tables, views or sequences), and the restore would replace it; nothing was changed: confirm with --yes (a backup of what is there now is kept first)", e.Database, e.Tables)
}

// RoomError says that the disk is too small for a restore.
type RoomError struct {
	Dir        string
	Need, Free uint64
}

func (e *RoomError) Error() string {
	return fmt.Sprintf("the restore needs about %s free under %s, which has %s; nothing was changed: make room, or restore on a larger disk",
		bytesize.String(int64(e.Need)), e.Dir, bytesize.String(int64(e.Free)))
}

// roomFor is what a restore of sqlBytes of SQL needs free: the data it
// loads, its indexes, and a margin. The database it replaces is dropped
// only after the new one is complete, so both are on disk at once.
func roomFor(sqlBytes int64) uint64 { return uint64(sqlBytes)*3/2 + 64<<20 }

// checkRoom refuses a restore that free space under dir cannot hold.
func checkRoom(dir string, need uint64, free func(string) (uint64, error)) error {
	have, err := free(dir)
	if err != nil {
		return fmt.Errorf("free space under %s: %w", dir, err)
	}
	if have < need {
		return &RoomError{Dir: dir, Need: need, Free: have}
	}
	return nil
}

func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
