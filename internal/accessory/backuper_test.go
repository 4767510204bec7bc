package accessory

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/services"
)

// Every service hoist backs up has a dump format here, and no other
// has: services' Backup and serviceOf say the same.
func TestBackedUpServicesHaveAFormat(t *testing.T) {
	for _, name := range services.Names() {
		svc := serviceOf[name]
		if svc == nil {
			t.Errorf("%s: no entry in serviceOf", name)
			continue
		}
		if has := svc.dump != nil; has != services.BacksUp(name) {
			t.Errorf("%s: Backup %v, but a dump format: %v", name, services.BacksUp(name), has)
		}
		if f := svc.dump; f != nil && (f.product == "" || f.tool == "" || f.scanner == nil || f.rowsLine == nil || f.notWhole == "") {
			t.Errorf("%s: its dump format lacks a field: %+v", name, *f)
		}
	}
}

// A service that is not backed up is refused before anything runs, in
// the words it always was.
func TestBackupRefusesAServiceWithoutBackups(t *testing.T) {
	s := &hostproto.AccessorySpec{App: "shop", Name: "cache", Service: services.Redis}
	want := "accessory cache is redis: hoist backs up and restores postgresql accessories; redis keeps its data in its own files"
	if _, err := Backup(context.Background(), s, Place{}, false); err == nil || err.Error() != want {
		t.Errorf("Backup: %v", err)
	}
	if _, err := Restore(context.Background(), s, Place{}, "x.sql.gz", false, nil); err == nil || err.Error() != want {
		t.Errorf("Restore: %v", err)
	}
	if _, err := VerifyRestore(context.Background(), s, Place{}, "", nil); err == nil || err.Error() != want {
		t.Errorf("VerifyRestore: %v", err)
	}
}

// otherDump is a second format, for what verify does with several.
type otherDump struct{ last string }

func (o *otherDump) Write(p []byte) (int, error) {
	if lines := strings.Split(strings.TrimRight(string(p), "\n"), "\n"); len(lines) > 0 {
		o.last = lines[len(lines)-1]
	}
	return len(p), nil
}
func (o *otherDump) result() scanned {
	return scanned{complete: o.last == "-- other dump complete", rows: map[string]int64{}}
}

var otherFormat = dumpFormat{scanner: func() dumpScan { return &otherDump{} }}

// A backup checked without its service's format (on the laptop) is
// whole when it is whole in one of the formats; with only another
// format it is not.
func TestVerifyReadsTheFormatTheDumpIsWholeIn(t *testing.T) {
	pg := makeBackup(t, dump)
	if _, _, err := verify(bytes.NewReader(pg), "db-x.sql.gz", &otherFormat, &pgDump); err != nil {
		t.Errorf("a pg_dump, as other or PostgreSQL's: %v", err)
	}
	if _, _, err := verify(bytes.NewReader(pg), "db-x.sql.gz", &otherFormat); err == nil || !strings.Contains(err.Error(), "the dump in it stopped before its end") {
		t.Errorf("a pg_dump, as other's only: %v", err)
	}
	other := makeBackup(t, "SELECT 1;\n-- other dump complete\n")
	if _, _, err := verify(bytes.NewReader(other), "db-x.sql.gz", &pgDump, &otherFormat); err != nil {
		t.Errorf("other's dump, as PostgreSQL's or other: %v", err)
	}
	if _, _, err := Verify(bytes.NewReader(other), "db-x.sql.gz"); err == nil {
		t.Error("other's dump passes Verify, which knows only the formats of services hoist backs up")
	}
}
