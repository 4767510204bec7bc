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

// ImportForeign stores an ordinary dump of the accessory's service, not
// made by hoist (size bytes from r, named file, gzipped or not), as an
// upload that restores like any hoist backup — as the app's role. For
// PostgreSQL that is plain SQL or pg_dump's custom format (-Fc), which
// pg_restore turns into SQL without owners and grants (they name roles
// this host does not have); postgres.foreign. The dump must be whole:
// for pg_dump, its closing line ends it. It returns the upload's name.
func ImportForeign(ctx context.Context, s *hostproto.AccessorySpec, p Place, file string, size int64, r io.Reader) (hostproto.BackupInfo, error) {
	b, format, err := backuperOf(s)
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
	meta := Meta{App: s.App, Accessory: s.Name, Database: s.Database, Version: b.version(), Created: time.Now().UTC().Truncate(time.Second), Foreign: file}
	comment, _ := json.Marshal(meta)
	disk := &firstError{w: f}
	zw := gzip.NewWriter(disk)
	zw.Header = gzip.Header{Name: strings.TrimSuffix(names(1), ".gz"), Comment: string(comment), ModTime: meta.Created}
	scan := format.scanner()
	err = b.foreign(ctx, in.(*bufio.Reader), io.MultiWriter(zw, scan), file)
	if disk.err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("import %s: write to %s: %w", file, p.Backups, disk.err)
	}
	if err != nil {
		return hostproto.BackupInfo{}, err
	}
	res := scan.result()
	if !res.complete {
		return hostproto.BackupInfo{}, &BadBackupError{File: file, Reason: format.notWhole}
	}
	io.WriteString(zw, format.rowsLine(res.rows))
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
