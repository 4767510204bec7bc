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
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/secrets"
)

// PostgreSQL's backups: pg_dump's plain SQL (dumpscan.go reads it),
// loaded by psql as the app's role in restricted mode. postgres is a
// backuper.

var _ backuper = (*postgres)(nil)

// pgDump is the format of PostgreSQL's dumps.
var pgDump = dumpFormat{
	product: "PostgreSQL",
	tool:    "pg_dump",
	scanner: func() dumpScan { return &dumpScanner{} },
	rowsLine: func(rows map[string]int64) string {
		b, _ := json.Marshal(rows)
		return rowsLine + string(b) + "\n"
	},
	notWhole: "it is not a whole pg_dump: it does not end with pg_dump's closing line (\"" + dumpComplete + "\")",
}

// dump runs pg_dump of the app's database, without owners and grants.
func (pg *postgres) dump(ctx context.Context, w io.Writer) error {
	return pg.run(ctx, "pg_dump", []string{"--no-owner", "--no-privileges", "-d", pg.s.Database}, nil, w)
}

// tables counts the app's database's own relations.
func (pg *postgres) tables(ctx context.Context) (bool, int, error) {
	exists, err := pg.databaseExists(ctx, pg.s.Database)
	if err != nil || !exists {
		return exists, 0, err
	}
	n, err := pg.userTables(ctx, pg.s.Database)
	return true, n, err
}

// foreign turns an ordinary pg_dump into plain SQL: pg_dump's custom
// format (-Fc) through pg_restore, without owners and grants (they name
// roles this host does not have); plain SQL as it is.
func (pg *postgres) foreign(ctx context.Context, in *bufio.Reader, w io.Writer, file string) error {
	if head, _ := in.Peek(5); string(head) == "PGDMP" {
		// pg_restore only reads the archive here, as postgres, and
		// writes SQL: it connects to nothing.
		if err := pg.run(ctx, "pg_restore", []string{"--no-owner", "--no-privileges", "-f", "-"}, in, w); err != nil {
			return &BadBackupError{File: file, Reason: "pg_restore cannot read it: " + err.Error()}
		}
		return nil
	}
	if _, err := io.Copy(w, in); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) {
			return &BadBackupError{File: file, Reason: "it is cut short or damaged (" + err.Error() + ")"}
		}
		return fmt.Errorf("import %s: %w", file, err)
	}
	return nil
}

// dropScratch removes a scratch database, as far as it can.
func (pg *postgres) dropScratch(ctx context.Context, scratch string) {
	pg.psql(ctx, "postgres", strings.NewReader("DROP DATABASE IF EXISTS "+quoteIdent(scratch)+" WITH (FORCE);\n"))
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
