package accessory

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/services"
)

// Backing up is a capability of a service. services says which services
// hoist backs up (Backup); the service's entry in serviceOf gives the
// format of its dumps (dump), which the laptop checks too; and its
// engine is a backuper, what dumping and loading need of the running
// service. The rest is every service's alike: the backup's file, its
// gzip header and checks, names, retention, records and off-site copies
// (backup.go, offsite.go), and the steps of a restore and of a verify
// drill (restore.go). PostgreSQL's are in pgbackup.go and dumpscan.go.

// dumpFormat is how one service's dumps read.
type dumpFormat struct {
	// product and tool name the server and its dump program, in what
	// hoist writes: "PostgreSQL", "pg_dump".
	product, tool string
	// scanner reads one dump as it goes by.
	scanner func() dumpScan
	// rowsLine is the line hoist writes after the dump, recording the
	// rows of each table, which loading the dump skips.
	rowsLine func(rows map[string]int64) string
	// notWhole says why a foreign dump that is not whole is refused.
	notWhole string
}

// dumpScan reads one dump as it goes by.
type dumpScan interface {
	io.Writer
	// result reads the end of the dump and says what was found.
	result() scanned
}

// scanned is what a dumpScan found in a dump.
type scanned struct {
	// complete: the dump ends as a finished dump of its tool ends.
	complete bool
	// rows counts each table's rows in the dump, keyed as the tool
	// names them; recorded are the counts hoist wrote after it (nil
	// for a backup without them), and badRows says that line is damaged.
	rows, recorded map[string]int64
	badRows        bool
}

// backuper is the engine of a service hoist backs up.
type backuper interface {
	engine
	// dump writes the app's database's dump, as its format reads, to w.
	dump(ctx context.Context, w io.Writer) error
	// tables counts the relations of the app's database (tables, views,
	// sequences); exists is false when there is no database.
	tables(ctx context.Context) (exists bool, n int, err error)
	// load makes database scratch afresh and loads a dump into it, in
	// one transaction, with the app's privileges and nothing more: the
	// dump comes from a file anyone may have edited.
	load(ctx context.Context, dump io.Reader, scratch string, p Place) error
	// swap gives scratch the app's database's name, replacing the
	// database (when exists) with no moment in which the name is missing.
	swap(ctx context.Context, scratch string, exists bool) error
	// dropScratch removes a scratch database, as far as it can.
	dropScratch(ctx context.Context, scratch string)
	// rowCounts counts the rows of each table of database db, as the
	// app's role, keyed as dumps name them.
	rowCounts(ctx context.Context, p Place, db string) (map[string]int64, error)
	// foreign writes the dump of an ordinary dump not made by hoist
	// (file, read from in, unzipped), as the format reads, to w. An
	// error the dump causes is a *BadBackupError.
	foreign(ctx context.Context, in *bufio.Reader, w io.Writer, file string) error
}

// backuperOf opens accessory s's engine for backing up, and its format.
func backuperOf(s *hostproto.AccessorySpec) (backuper, *dumpFormat, error) {
	svc := serviceOf[s.Service]
	if !services.BacksUp(s.Service) || svc == nil || svc.dump == nil {
		return nil, nil, fmt.Errorf("accessory %s is %s: hoist backs up and restores %s accessories; %s keeps its data in its own files", s.Name, s.Service, strings.Join(services.BackedUp(), ", "), s.Service)
	}
	e, err := svc.engine(s)
	if err != nil {
		return nil, nil, err
	}
	b, ok := e.(backuper)
	if !ok {
		return nil, nil, fmt.Errorf("accessory %s: hoist backs %s up, but its engine cannot", s.Name, s.Service)
	}
	return b, svc.dump, nil
}

// dumpFormats are the formats of every service hoist backs up, in the
// order of their names: what a backup checked without its accessory's
// service (on the laptop) may hold.
func dumpFormats() []*dumpFormat {
	var out []*dumpFormat
	for _, name := range services.BackedUp() {
		if svc := serviceOf[name]; svc != nil && svc.dump != nil {
			out = append(out, svc.dump)
		}
	}
	return out
}
