package accessory

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// ImportForeign stores an ordinary pg_dump, not made by hoist (size
// bytes from r, named file), as an upload that restores like any hoist
// backup — as the app's role, in psql's restricted mode: plain SQL,
// gzipped or not, or pg_dump's custom format (-Fc), which pg_restore
// turns into SQL without owners and grants (they name roles this host
// does not have). The dump must be whole: pg_dump's closing line ends
// it. It returns the upload's name.
func ImportForeign(ctx context.Context, s *hostproto.AccessorySpec, p Place, file string, size int64, r io.Reader) (hostproto.BackupInfo, error) {
	pg, err := postgresOf(s)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	if err := os.MkdirAll(p.Backups, 0o700); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import: %w", err)
	}
	raw, err := os.CreateTemp(p.Backups, ".foreign-*")
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import: %w", err)
	}
	defer os.Remove(raw.Name())
	defer raw.Close()
	if n, err := io.CopyN(raw, r, size); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import %s: the upload ended after %d of %d bytes: %w", file, n, size, err)
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import: %w", err)
	}
	var in io.Reader = bufio.NewReader(raw)
	if head, _ := in.(*bufio.Reader).Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(in)
		if err != nil {
			return hostproto.BackupInfo{}, &BadBackupError{File: file, Reason: "its gzip header is damaged"}
		}
		in = bufio.NewReader(zr)
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".gz"), ".sql"), ".dump")
	names := func(n int) string {
		if n > 1 {
			return fmt.Sprintf("%sforeign-%s-%d%s", uploadPrefix, stem, n, hostproto.BackupExt)
		}
		return uploadPrefix + "foreign-" + stem + hostproto.BackupExt
	}
	if !hostproto.ValidBackupFile(names(1)) {
		names = func(n int) string {
			return fmt.Sprintf("%sforeign-%s-%d%s", uploadPrefix, time.Now().UTC().Format("20060102T150405Z"), n, hostproto.BackupExt)
		}
	}
	f, err := atomicfile.Create(filepath.Join(p.Backups, names(1)), 0o600)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	defer f.Abort()
	meta := Meta{App: s.App, Accessory: s.Name, Database: s.Database, Version: pg.ver, Created: time.Now().UTC().Truncate(time.Second), Foreign: file}
	comment, _ := json.Marshal(meta)
	disk := &firstError{w: f}
	zw := gzip.NewWriter(disk)
	zw.Header = gzip.Header{Name: strings.TrimSuffix(names(1), ".gz"), Comment: string(comment), ModTime: meta.Created}
	scan := &dumpScanner{}
	sql := io.MultiWriter(zw, scan)
	if head, _ := in.(*bufio.Reader).Peek(5); string(head) == "PGDMP" {
		// pg_restore only reads the archive here, as postgres, and
		// writes SQL: it connects to nothing.
		err = pg.run(ctx, "pg_restore", []string{"--no-owner", "--no-privileges", "-f", "-"}, in, sql)
		if err != nil && disk.err == nil {
			return hostproto.BackupInfo{}, &BadBackupError{File: file, Reason: "pg_restore cannot read it: " + err.Error()}
		}
	} else {
		_, err = io.Copy(sql, in)
		if err != nil && disk.err == nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
				return hostproto.BackupInfo{}, &BadBackupError{File: file, Reason: "it is cut short or damaged (" + err.Error() + ")"}
			}
			return hostproto.BackupInfo{}, fmt.Errorf("import %s: %w", file, err)
		}
	}
	if disk.err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import %s: write to %s: %w", file, p.Backups, disk.err)
	}
	scan.flush()
	if !scan.complete {
		return hostproto.BackupInfo{}, &BadBackupError{File: file, Reason: "it is not a whole pg_dump: it does not end with pg_dump's closing line (\"" + dumpComplete + "\")"}
	}
	rows, _ := json.Marshal(scan.rows)
	fmt.Fprintf(zw, "%s%s\n", rowsLine, rows)
	if err := zw.Close(); err != nil || disk.err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import %s: write to %s: %w", file, p.Backups, errors.Join(disk.err, err))
	}
	n, _ := f.Seek(0, io.SeekCurrent)
	kept, err := commitUnique(f, p.Backups, names)
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	return hostproto.BackupInfo{File: kept, Size: n, Created: meta.Created, Kind: KindUploaded}, nil
}
