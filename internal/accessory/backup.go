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
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// A backup of an accessory is its service's dump (backuper.go; for
// PostgreSQL pg_dump's plain SQL), gzipped: gzip's CRC-32 and length
// detect a file that is cut short or damaged, the dump's own end (for
// pg_dump its closing line) a dump that stopped early, and the gzip
// header's comment says what the file holds. Restore reads the whole
// file and checks all three before it touches the database. Backups are
// written to a temporary file and renamed into place once complete, so
// that the backups directory only ever holds whole ones.

// dumpComplete is the line pg_dump writes once everything is dumped.
const dumpComplete = "-- PostgreSQL database dump complete"

// Meta is what a backup says about itself, in its gzip header.
type Meta struct {
	App       string    `json:"app"`
	Accessory string    `json:"accessory"`
	Database  string    `json:"database"`
	Version   string    `json:"version"` // PostgreSQL's
	Created   time.Time `json:"created"`
	// Rows counts each table's rows in the dump (schema.table as
	// pg_dump names it), as the database held them when dumped: what a
	// verify drill finds again. It is read from the line hoist writes
	// after pg_dump's (rowsLine), not from the header.
	Rows map[string]int64 `json:"rows,omitempty"`
	// Foreign names the ordinary pg_dump this backup was imported from
	// (restore --foreign); "" for hoist's own.
	Foreign string `json:"foreign,omitempty"`
}

// The kinds of backups a host keeps, each counted apart for retention:
// the accessory's own (the timer's and `hoist accessory backup`'s),
// the copies a restore makes of what it replaces, and uploads.
const (
	KindBackup        = "backup"
	KindBeforeRestore = "before-restore"
	KindUploaded      = "uploaded"
)

// KeepAside is how many before-restore copies, and how many uploads,
// a host keeps: the newest of each, besides backup.keep of its own.
const KeepAside = 5

// BadBackupError says why a backup cannot be restored.
type BadBackupError struct {
	File, Reason string
}

func (e *BadBackupError) Error() string {
	return fmt.Sprintf("backup %s cannot be used: %s; nothing was changed", e.File, e.Reason)
}

// uploadPrefix begins the name of every backup received from elsewhere.
const uploadPrefix = "uploaded-"

var ownBackup = regexp.MustCompile(`^[a-z][a-z0-9-]*-[0-9]{8}T[0-9]{6}Z(-[0-9]+)?(-before-restore)?\.sql\.gz$`)

// sequence is which of the names of its second a backup of the
// accessory's own took (backupNames): 1 for NAME-TIME.sql.gz, n for
// NAME-TIME-n; uploads are 0.
func sequence(file string) int {
	m := ownBackup.FindStringSubmatch(file)
	if m == nil || strings.HasPrefix(file, uploadPrefix) {
		return 0
	}
	if m[1] == "" {
		return 1
	}
	n, _ := strconv.Atoi(m[1][1:])
	return n
}

// kindOf tells a backup's kind from its name.
func kindOf(file string) string {
	switch {
	case strings.HasPrefix(file, uploadPrefix) || !ownBackup.MatchString(file):
		return KindUploaded
	case strings.HasSuffix(file, "-before-restore"+hostproto.BackupExt):
		return KindBeforeRestore
	}
	return KindBackup
}

// backupNames are the names a backup of s made at t may take, in turn:
// NAME-20261207T015917Z.sql.gz, then with -2, -3... when another backup
// of the same second has the name (a backup never replaces another).
func backupNames(s *hostproto.AccessorySpec, t time.Time, suffix string) func(n int) string {
	base := s.Name + "-" + t.UTC().Format("20060102T150405Z")
	return func(n int) string {
		if n > 1 {
			return fmt.Sprintf("%s-%d%s%s", base, n, suffix, hostproto.BackupExt)
		}
		return base + suffix + hostproto.BackupExt
	}
}

// commitUnique commits f in dir under the first free name of names.
func commitUnique(f *atomicfile.File, dir string, names func(n int) string) (string, error) {
	for n := 1; n <= 1000; n++ {
		err := f.CommitNewAs(filepath.Join(dir, names(n)))
		if !errors.Is(err, os.ErrExist) {
			return names(n), err
		}
	}
	f.Abort()
	return "", fmt.Errorf("backup: no free name for %s", names(1))
}

// Backup dumps the accessory's database into a new backup, records how
// it went (scheduled: the timer's run), then prunes old backups.
func Backup(ctx context.Context, s *hostproto.AccessorySpec, p Place, scheduled bool) (hostproto.BackupInfo, error) {
	b, f, err := backuperOf(s)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	bi, err := backup(ctx, s, b, f, p, backupNames(s, time.Now(), ""))
	if rerr := recordBackup(p, bi, scheduled, err); err == nil {
		err = rerr
	}
	if err != nil {
		return bi, err
	}
	if err := prune(p.Backups, s.BackupKeep, spared(p, bi.File)...); err != nil {
		return bi, err
	}
	// Off the host: the backup stands whatever becomes of its copy,
	// and a copy that failed is made by the next run.
	if _, err := SyncOffsite(ctx, s, p); err != nil {
		bi.OffsiteError = err.Error()
	}
	return bi, nil
}

// spared are the backups a prune leaves whatever their age: files, and
// the newest that a verify drill found whole (the newest known good).
func spared(p Place, files ...string) []string {
	rec, err := ReadRecord(p)
	if err != nil {
		return files
	}
	newest, at := "", time.Time{}
	for f, t := range rec.Verified {
		if t.After(at) {
			newest, at = f, t
		}
	}
	if newest != "" {
		files = append(files, newest)
	}
	return files
}

// backup writes the database's dump to a new file in the backups
// directory, under the first free name of names.
func backup(ctx context.Context, s *hostproto.AccessorySpec, b backuper, format *dumpFormat, p Place, names func(int) string) (hostproto.BackupInfo, error) {
	if err := os.MkdirAll(p.Backups, 0o700); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	f, err := atomicfile.Create(filepath.Join(p.Backups, names(1)), 0o600)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	defer f.Abort()
	meta := Meta{App: s.App, Accessory: s.Name, Database: s.Database, Version: b.version(), Created: time.Now().UTC().Truncate(time.Second)}
	disk := &firstError{w: f}
	zw, _ := gzip.NewWriterLevel(disk, gzip.DefaultCompression) // a valid level: cannot fail
	comment, _ := json.Marshal(meta)
	zw.Header = gzip.Header{Name: strings.TrimSuffix(names(1), ".gz"), Comment: string(comment), ModTime: meta.Created}
	scan := format.scanner()
	err = b.dump(ctx, io.MultiWriter(zw, scan))
	if disk.err != nil {
		// The dump's own error is then only the broken pipe.
		return hostproto.BackupInfo{}, fmt.Errorf("backup of %s: write to %s: %w", s.Name, p.Backups, disk.err)
	}
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("backup of %s: %w", s.Name, err)
	}
	res := scan.result()
	if !res.complete {
		return hostproto.BackupInfo{}, fmt.Errorf("backup of %s: %s exited without finishing the dump", s.Name, format.tool)
	}
	// The row counts follow the dump, as a line that loading skips.
	io.WriteString(zw, format.rowsLine(res.rows))
	if err := zw.Close(); err != nil || disk.err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("backup of %s: write to %s: %w", s.Name, p.Backups, errors.Join(disk.err, err))
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("backup of %s: %w", s.Name, err)
	}
	file, err := commitUnique(f, p.Backups, names)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	return hostproto.BackupInfo{File: file, Size: size, Created: meta.Created, Kind: kindOf(file)}, nil
}

// firstError writes to w and keeps the first error: when the disk is
// full, the cause to report, not the dump's broken pipe that follows.
type firstError struct {
	w   io.Writer
	err error
}

func (e *firstError) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// Verify reads a whole backup and checks it: gzip's checksum and length,
// nothing after its end, the dump's own end (pg_dump's closing line),
// as a dump of one of the services hoist backs up. It returns what the
// backup says of itself and the size of the SQL in it.
func Verify(r io.Reader, file string) (Meta, int64, error) { return verify(r, file, dumpFormats()...) }

// verify is Verify of a dump of one of formats.
func verify(r io.Reader, file string, formats ...*dumpFormat) (Meta, int64, error) {
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
	scans := make([]dumpScan, len(formats))
	ws := make([]io.Writer, len(formats))
	for i, f := range formats {
		scans[i] = f.scanner()
		ws[i] = scans[i]
	}
	n, err := io.Copy(io.MultiWriter(ws...), zr)
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad(fmt.Sprintf("it is cut short: it ends after %d bytes of SQL, before its gzip trailer", n))
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return bad("its content is damaged (" + err.Error() + ")")
	case err != nil:
		return Meta{}, 0, fmt.Errorf("read backup %s: %w", file, err)
	}
	var scan scanned
	for i, s := range scans {
		// The dump is read as the format in which it is whole.
		if r := s.result(); i == 0 || r.complete && !scan.complete {
			scan = r
		}
	}
	if _, err := br.Peek(1); err == nil {
		return bad("it has bytes after its end")
	}
	if !scan.complete {
		return bad("the dump in it stopped before its end")
	}
	if scan.badRows {
		return bad("its line of row counts is damaged")
	}
	if scan.recorded != nil {
		for table, want := range scan.recorded {
			if got := scan.rows[table]; got != want {
				return bad(fmt.Sprintf("table %s holds %d rows in it, where %d were dumped", table, got, want))
			}
		}
		meta.Rows = scan.recorded
	}
	return meta, n, nil
}

// VerifyFile is Verify of the file at path.
func VerifyFile(path string) (Meta, int64, error) { return verifyFile(path, dumpFormats()...) }

// verifyFile is verify of the file at path.
func verifyFile(path string, formats ...*dumpFormat) (Meta, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, 0, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	return verify(f, filepath.Base(path), formats...)
}

// ListBackups lists the backups in dir, oldest first.
func ListBackups(dir string) ([]hostproto.BackupInfo, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []hostproto.BackupInfo
	for _, e := range ents {
		if !e.Type().IsRegular() || !hostproto.ValidBackupFile(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, hostproto.BackupInfo{File: e.Name(), Size: fi.Size(), Created: created(filepath.Join(dir, e.Name()), fi.ModTime()), Kind: kindOf(e.Name())})
	}
	seq := make(map[string]int, len(out))
	for _, b := range out {
		seq[b.File] = sequence(b.File)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		// Created is to the second: within one, the names were taken
		// in turn (NAME, NAME-2, ... NAME-10), which their spelling
		// does not sort by.
		if si, sj := seq[out[i].File], seq[out[j].File]; si != sj {
			return si < sj
		}
		return out[i].File < out[j].File
	})
	return out, nil
}

// Backups lists the accessory's backups on this host, oldest first,
// with when a verify drill found each whole.
func Backups(p Place) ([]hostproto.BackupInfo, error) {
	bs, _, err := backupsAndRecord(p)
	return bs, err
}

// backupsAndRecord is Backups, and the record it read the drills in.
func backupsAndRecord(p Place) ([]hostproto.BackupInfo, Record, error) {
	bs, err := ListBackups(p.Backups)
	if err != nil {
		return nil, Record{}, err
	}
	rec, err := ReadRecord(p)
	if err != nil {
		return nil, Record{}, err
	}
	for i := range bs {
		bs[i].Verified = rec.Verified[bs[i].File]
	}
	return bs, rec, nil
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

// prune removes old backups in dir: all but the newest keep of the
// accessory's own, and all but the newest KeepAside before-restore
// copies and uploads, each counted apart. The files of protect (the
// backup a restore used, the one just made) are never removed.
func prune(dir string, keep int, protect ...string) error {
	bs, err := ListBackups(dir)
	if err != nil || keep < 1 {
		return err
	}
	limit := map[string]int{KindBackup: keep, KindBeforeRestore: KeepAside, KindUploaded: KeepAside}
	seen := map[string]int{}
	removed := false
	for i := len(bs) - 1; i >= 0; i-- { // newest first
		b := bs[i]
		seen[b.Kind]++
		if seen[b.Kind] <= limit[b.Kind] || slices.Contains(protect, b.File) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, b.File)); err != nil {
			return fmt.Errorf("prune backups: %w", err)
		}
		removed = true
	}
	if !removed {
		return nil
	}
	return atomicfile.SyncDir(dir)
}

// OpenBackup opens backup file of p, for fetching it.
func OpenBackup(p Place, file string) (*os.File, error) {
	if !hostproto.ValidBackupFile(file) {
		return nil, fmt.Errorf("%q is not a backup file name", file)
	}
	f, err := os.Open(filepath.Join(p.Backups, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("there is no backup %s on this host: hoist accessory backups lists them", file)
	}
	return f, err
}

// ReceiveBackup stores a backup sent from elsewhere (size bytes from r),
// once it is whole and verified, as an upload: uploaded-FILE, or
// uploaded-FILE-2... when the name is taken (an upload never replaces
// a backup). It returns the name it is kept under.
func ReceiveBackup(p Place, file string, size int64, r io.Reader) (hostproto.BackupInfo, error) {
	if !hostproto.ValidBackupFile(file) {
		return hostproto.BackupInfo{}, fmt.Errorf("%q is not a backup file name (NAME.sql.gz)", file)
	}
	if err := os.MkdirAll(p.Backups, 0o700); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("receive backup: %w", err)
	}
	stem := strings.TrimSuffix(file, hostproto.BackupExt)
	if !strings.HasPrefix(stem, uploadPrefix) {
		stem = uploadPrefix + stem
	}
	names := func(n int) string {
		if n > 1 {
			return fmt.Sprintf("%s-%d%s", stem, n, hostproto.BackupExt)
		}
		return stem + hostproto.BackupExt
	}
	f, err := atomicfile.Create(filepath.Join(p.Backups, names(1)), 0o600)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	defer f.Abort()
	if n, err := io.CopyN(f, r, size); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("receive backup %s: the upload ended after %d of %d bytes: %w", file, n, size, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("receive backup: %w", err)
	}
	meta, _, err := Verify(f, file)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	kept, err := commitUnique(f, p.Backups, names)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	return hostproto.BackupInfo{File: kept, Size: size, Created: meta.Created, Kind: KindUploaded}, nil
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
