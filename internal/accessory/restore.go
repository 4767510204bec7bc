package accessory

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
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
	pg, err := postgresOf(s)
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
	meta, size, err := VerifyFile(path)
	if err != nil {
		return "", err
	}
	if err := checkRoom(pg.dataDir(), roomFor(size), diskFree); err != nil {
		return "", err
	}
	db := s.Database
	exists, err := pg.databaseExists(ctx, db)
	if err != nil {
		return "", err
	}
	n := 0
	if exists {
		if n, err = pg.userTables(ctx, db); err != nil {
			return "", err
		}
	}
	kept := ""
	if n > 0 {
		if !confirm {
			return "", &hostproto.ConfirmError{Database: db, Tables: n}
		}
		before, err := pg.backup(ctx, p, backupNames(s, time.Now(), "-before-restore"))
		if err != nil {
			return "", fmt.Errorf("back up %s before the restore: %w; nothing was changed", db, err)
		}
		kept = before.File
		fmt.Fprintf(log, "what %s held is kept in backup %s\n", db, before.File)
	}
	scratch := db + "__restore"
	fmt.Fprintf(log, "loading %s (PostgreSQL %s, made %s) into %s\n", file, meta.Version, meta.Created.Format(time.RFC3339), scratch)
	if err := pg.loadFile(ctx, path, scratch, p); err != nil {
		pg.dropScratch(ctx, scratch)
		return kept, fmt.Errorf("restore of %s failed: %w; the database was not changed", file, err)
	}
	if err := pg.swap(ctx, scratch, exists); err != nil {
		pg.dropScratch(ctx, scratch)
		return kept, err
	}
	fmt.Fprintf(log, "%s restored from %s\n", db, file)
	if err := updateRecord(p, func(r *Record) { r.RestoredFrom = file }); err != nil {
		return kept, err
	}
	return kept, prune(p.Backups, s.BackupKeep, spared(p, file)...)
}

// dropScratch removes a scratch database, as far as it can.
func (pg *postgres) dropScratch(ctx context.Context, scratch string) {
	pg.psql(ctx, "postgres", strings.NewReader("DROP DATABASE IF EXISTS "+quoteIdent(scratch)+" WITH (FORCE);\n"))
}

// loadFile loads the SQL of the backup at path into scratch (load).
func (pg *postgres) loadFile(ctx context.Context, path, scratch string, p Place) error {
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
	return pg.load(ctx, zr, scratch, p)
}

// load makes database scratch afresh and loads the backup's SQL into
// it, in one transaction. The SQL comes from a file anyone may have
// edited (an upload, a bucket), so it runs with the app's privileges
// and nothing more: psql connects as the app's role, with its password,
// never as postgres; and psql is put in restricted mode first, under a
// key of hoist's that the backup cannot know, so that none of psql's
// own commands (\! and \o | run programs on the host, \c reconnects,
// \i reads files) is obeyed, only SQL. The extensions the app's
// database has that only a superuser may make are made in scratch
// first, so that the backup's CREATE EXTENSION IF NOT EXISTS finds them.
func (pg *postgres) load(ctx context.Context, sql io.Reader, scratch string, p Place) error {
	db := pg.s.Database
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s;\nCREATE DATABASE %[1]s OWNER %[2]s;\n",
		quoteIdent(scratch), quoteIdent(db)))); err != nil {
		return err
	}
	if err := pg.copyExtensions(ctx, scratch); err != nil {
		return err
	}
	key, err := secrets.Generate(32)
	if err != nil {
		return err
	}
	return pg.psqlAsApp(ctx, p, scratch, io.MultiReader(strings.NewReader("\\restrict "+key+"\n"), newRestrictFilter(sql)), io.Discard, "--single-transaction")
}

// copyExtensions makes in database scratch, as postgres, the extensions
// of the app's database that live in schema public, owned by the app's
// role as the backup's own would be: the app had them already, so the
// restore gives it nothing new. Others the backup makes itself, as the
// app's role: trusted ones succeed, and an untrusted one the database
// lacks fails the restore, naming it.
func (pg *postgres) copyExtensions(ctx context.Context, scratch string) error {
	db := pg.s.Database
	exists, err := pg.databaseExists(ctx, db)
	if err != nil || !exists {
		return err
	}
	out, err := pg.psql(ctx, db, strings.NewReader(`SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE n.nspname = 'public' ORDER BY e.oid;
`))
	if err != nil {
		return err
	}
	var script strings.Builder
	for _, ext := range strings.Fields(out) {
		fmt.Fprintf(&script, "CREATE EXTENSION IF NOT EXISTS %s WITH SCHEMA public CASCADE;\n", quoteIdent(ext))
		fmt.Fprintf(&script, "UPDATE pg_extension SET extowner = %s::regrole WHERE extname = %s;\n", quoteLiteral(quoteIdent(db)), quoteLiteral(ext))
	}
	if script.Len() == 0 {
		return nil
	}
	_, err = pg.psql(ctx, scratch, strings.NewReader(script.String()))
	return err
}

// psqlAsApp runs psql on database db as the app's role, with its
// password, through the local socket (pg_hba.conf lets the role reach
// its database and hoist's scratch databases there), writing psql's
// output to out.
func (pg *postgres) psqlAsApp(ctx context.Context, p Place, db string, script io.Reader, out io.Writer, extra ...string) error {
	password, err := os.ReadFile(p.Password)
	if err != nil {
		return fmt.Errorf("accessory %s: the app's password: %w", pg.s.Name, err)
	}
	args := append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", pg.s.Database, "-d", db}, extra...)
	return pg.runEnv(ctx, "psql", append(args, "-f", "-"), []string{"PGPASSWORD=" + strings.TrimSpace(string(password))}, script, out)
}

// swap gives scratch the database's name and drops the database it
// replaces, if it exists, with no moment in which the name is missing:
// both renames are one transaction. A rename needs the database to have
// no connections, and the app reconnects at once; so the rename first
// takes its lock, which holds new connections back (they wait, and then
// reach the new database, or are refused once: "It seems to have just
// been dropped or renamed"), and only then, while it waits for the
// old ones to end, are the app's connections to it closed, once.
func (pg *postgres) swap(ctx context.Context, scratch string, exists bool) error {
	db := pg.s.Database
	old := db + "__replaced"
	id := quoteIdent(db)
	if !exists {
		_, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("ALTER DATABASE %s RENAME TO %s;\n", quoteIdent(scratch), id)))
		return err
	}
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE);\n", quoteIdent(old)))); err != nil {
		return fmt.Errorf("restore: %w; the database was not changed", err)
	}
	oid, err := pg.psql(ctx, "postgres", strings.NewReader("SELECT oid FROM pg_database WHERE datname = "+quoteLiteral(db)+";\n"))
	if _, cerr := strconv.ParseUint(oid, 10, 32); err != nil || cerr != nil {
		return fmt.Errorf("restore: find database %s: %v %q; the database was not changed", db, err, oid)
	}
	rename := fmt.Sprintf("BEGIN;\nALTER DATABASE %s RENAME TO %s;\nALTER DATABASE %s RENAME TO %s;\nCOMMIT;\n", id, quoteIdent(old), quoteIdent(scratch), id)
	// Connections that end only once their query does, a moment late,
	// make the rename give up (PostgreSQL waits 5 s for them): then it
	// is tried again, up to three times.
	for try := 1; ; try++ {
		err = pg.renameClosing(ctx, rename, oid)
		if err == nil || try == 3 || !strings.Contains(err.Error(), "is being accessed by other users") {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("restore: %w; the database was not changed", err)
	}
	if _, err := pg.psql(ctx, "postgres", strings.NewReader(fmt.Sprintf("DROP DATABASE %s WITH (FORCE);\n", quoteIdent(old)))); err != nil {
		return fmt.Errorf("restore is done, but dropping the replaced database %s failed: %w", old, err)
	}
	return nil
}

// renameClosing runs the renames of swap, and meanwhile, once they hold
// the lock of database oid, closes the connections to it.
func (pg *postgres) renameClosing(ctx context.Context, rename, oid string) error {
	done := make(chan error, 1)
	go func() {
		_, err := pg.psql(ctx, "postgres", strings.NewReader(rename))
		done <- err
	}()
	// Only while the rename holds the database's lock: a connection
	// closed before would be opened again at once, and counted.
	closeLocked := fmt.Sprintf(`SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
WHERE a.datid = %[1]s AND EXISTS (SELECT FROM pg_locks l WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass
  AND l.objid = %[1]s AND l.mode = 'AccessExclusiveLock' AND l.granted);
`, oid)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-deadline:
			return <-done // the rename gives up by itself after 5 s
		case <-tick.C:
			pg.psql(ctx, "postgres", strings.NewReader(closeLocked))
		}
	}
}

// VerifyRestore is the drill that makes a backup count as good: it
// restores backup file (the newest of the accessory's own for "") into
// a scratch database, as any restore does, counts each table's rows
// there and compares them with the counts recorded when it was dumped,
// then drops the scratch database. The app's database is not touched.
// The result is recorded, and returned; err is for a drill that could
// not run at all.
func VerifyRestore(ctx context.Context, s *hostproto.AccessorySpec, p Place, file string, log io.Writer) (hostproto.Verification, error) {
	pg, err := postgresOf(s)
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
	v.OK, v.Tables, v.Detail = pg.drill(ctx, p, path, file)
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
func (pg *postgres) drill(ctx context.Context, p Place, path, file string) (bool, int, string) {
	meta, size, err := VerifyFile(path)
	if err != nil {
		return false, 0, err.Error()
	}
	if err := checkRoom(pg.dataDir(), roomFor(size), diskFree); err != nil {
		return false, 0, err.Error()
	}
	scratch := pg.s.Database + "__verify"
	defer pg.dropScratch(ctx, scratch)
	if err := pg.loadFile(ctx, path, scratch, p); err != nil {
		return false, 0, "the restore failed: " + err.Error()
	}
	got, err := pg.rowCounts(ctx, p, scratch)
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

// rowCounts counts the rows of every table of database db, as the app's
// role, keyed as pg_dump names them (quote_ident follows the same rule).
func (pg *postgres) rowCounts(ctx context.Context, p Place, db string) (map[string]int64, error) {
	var out bytes.Buffer
	err := pg.psqlAsApp(ctx, p, db, strings.NewReader(`SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%';
`), &out, "-F", "\t")
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		table, n, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		c, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("count of %s: %q", table, n)
		}
		counts[table] = c
	}
	return counts, nil
}
