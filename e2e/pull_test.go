//go:build lab

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// localPostgres is a PostgreSQL cluster of this machine, as an operator
// has one for development: a temporary data directory, on loopback.
type localPostgres struct {
	bin  string // the directory of initdb, pg_ctl, psql
	port int
}

// startLocalPostgres starts a cluster with Debian's postgresql package
// as a user that is not root (initdb refuses root), with trust on
// loopback; under CI=true a machine without it fails the test.
func startLocalPostgres(t *testing.T) *localPostgres {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(initdbs)
	if len(initdbs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL on this machine under CI: scripts/deps.sh installs Debian's postgresql")
		}
		t.Skip("no PostgreSQL on this machine (apt install postgresql)")
	}
	pg := &localPostgres{bin: filepath.Dir(initdbs[len(initdbs)-1])}
	owner := "postgres"
	u, err := user.Lookup(owner)
	if err != nil {
		owner = "nobody"
		if u, err = user.Lookup(owner); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "hoist-local-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	as := func(args ...string) {
		t.Helper()
		cmd := exec.Command("runuser", append([]string{"-u", owner, "--"}, args...)...)
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			fail := t.Skipf
			if os.Getenv("CI") == "true" {
				fail = t.Fatalf
			}
			fail("local PostgreSQL: %v: %v\n%s", args, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	as(filepath.Join(pg.bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	as(filepath.Join(pg.bin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", pg.port, dir), "start")
	t.Cleanup(func() {
		exec.Command("runuser", "-u", owner, "--", filepath.Join(pg.bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
	})
	// The operator's own role: it may make databases, nothing more.
	pg.psql(t, "postgres", "postgres", "CREATE ROLE puller LOGIN CREATEDB")
	return pg
}

// psql runs sql in database db as role and returns its unaligned,
// tuples-only output.
func (pg *localPostgres) psql(t *testing.T, role, db, sql string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(pg.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(pg.port), "-U", role, "-d", db, "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("local psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (pg *localPostgres) url(role, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", role, pg.port, db)
}

// TestPsqlAndPull is the proof for hoist accessory psql and
// pull: psql reaches the database as the app's role and no more, on a
// terminal and without one; pull copies it into a file that restores,
// and into a local PostgreSQL as the operator's own role, refusing a
// database that holds data unless --force.
func TestPsqlAndPull(t *testing.T) {
	hosts := needLab(t)
	local := startLocalPostgres(t)
	h := hosts[0]
	a := newNotesApp(t, "pulled", 3763, hosts[:1], "accessories:\n  db:\n    service: postgresql\n    port: 5466\n")
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	for i := 1; i <= 3; i++ {
		a.addNote(t, h, fmt.Sprintf("note %d", i))
	}

	// Without a terminal: psql's arguments, its output, its status.
	if got := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "psql", "db", "-A", "-t", "-c", "select current_user, count(*) from notes")); got != "pulled|3" {
		t.Errorf("psql -c: %q", got)
	}
	if got := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "psql", "db", "-A", "-t", "-c", "select rolsuper from pg_roles where rolname = current_user")); got != "f" {
		t.Errorf("the role psql runs as is a superuser: %q", got)
	}
	if got := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "psql", "db", "-c", `\! id -un`)); got != "hoist-pulled" {
		t.Errorf("psql's shell runs as %q, want the app's user", got)
	}
	_, stderr, err := hoistTry(a.dir, "accessory", "psql", "db", "-c", "ALTER ROLE pulled SUPERUSER")
	// PostgreSQL 15: "must be superuser to alter superuser roles"; 16: "permission denied to alter role".
	if exitCode(err) != 1 || !(strings.Contains(stderr, "must be superuser") || strings.Contains(stderr, "permission denied")) {
		t.Errorf("psql made the app's role a superuser? exit %d: %s", exitCode(err), stderr)
	}
	if got := psqlOn(t, h, 5466, "postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'pulled';"); got != "f" {
		t.Errorf("the app's role is a superuser: %q", got)
	}

	// On a terminal: psql's prompt is the role's (=>, not a superuser's =#).
	tm := startOnTerminal(t, a.dir, "accessory", "psql", "db")
	tm.expect("pulled=> ")
	tm.send("select count(*) as n from notes;\r")
	tm.expect("(1 row)")
	tm.send(`\q` + "\r")
	if code := tm.wait(); code != 0 {
		t.Errorf("psql on a terminal exited %d:\n%s", code, tm.output())
	}
	if !strings.Contains(tm.output(), " 3\r\n") {
		t.Errorf("psql on a terminal showed:\n%q", tm.output())
	}

	// Into a file: a backup that restores.
	dir := t.TempDir()
	file := filepath.Join(dir, "copy.sql.gz")
	if got := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "pull", "db", "--to", file)); got != file {
		t.Errorf("pull --to printed %q, want %s", got, file)
	}
	if sql := readBackupSQL(t, file); !strings.Contains(sql, "note 3") {
		t.Errorf("the pulled file lacks the notes")
	}
	if stderr := failHoist(t, a.dir, "accessory", "pull", "db", "--to", file); !strings.Contains(stderr, "exists") || !strings.Contains(stderr, "--force") {
		t.Errorf("pull over an existing file: %s", stderr)
	}
	a.addNote(t, h, "after the pull")
	var restored struct {
		File   string `json:"file"`
		Before string `json:"before"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "restore", "db", file, "--yes", "--json")), &restored); err != nil ||
		restored.File == "" || !strings.Contains(restored.Before, "-before-restore") {
		t.Errorf("restore --json: %+v %v", restored, err)
	}
	if got := a.notes(t, h); strings.Contains(got, "after the pull") || !strings.Contains(got, "note 3") {
		t.Errorf("after restoring the pulled file the notes are %q", got)
	}

	// Into a local PostgreSQL, as the operator's own role.
	into := local.url("puller", "notes_dev")
	var pulled struct {
		Into     string `json:"into"`
		Tables   int    `json:"tables"`
		Replaced bool   `json:"replaced"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "pull", "db", "--into", into, "--json")), &pulled); err != nil ||
		pulled.Into != into || pulled.Tables < 1 || pulled.Replaced {
		t.Errorf("pull --into --json: %+v %v", pulled, err)
	}
	if got := local.psql(t, "puller", "notes_dev", "select count(*) from notes"); got != "3" {
		t.Errorf("the local copy holds %s notes, want 3", got)
	}
	if got := local.psql(t, "puller", "notes_dev", "select tableowner from pg_tables where tablename = 'notes'"); got != "puller" {
		t.Errorf("the local notes table belongs to %q, want the operator's role", got)
	}
	a.addNote(t, h, "note 4")
	stderr = failHoist(t, a.dir, "accessory", "pull", "db", "--into", into)
	if !strings.Contains(stderr, "database notes_dev of "+into+" is not empty") || !strings.Contains(stderr, "--force") {
		t.Errorf("pull into a database with data: %s", stderr)
	}
	if got := local.psql(t, "puller", "notes_dev", "select count(*) from notes"); got != "3" {
		t.Errorf("a refused pull changed the local copy: %s notes", got)
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "pull", "db", "--into", into, "--force", "--json")), &pulled); err != nil || !pulled.Replaced {
		t.Errorf("pull --force --json: %+v %v", pulled, err)
	}
	if got := local.psql(t, "puller", "notes_dev", "select count(*) from notes"); got != "4" {
		t.Errorf("after pull --force the local copy holds %s notes, want 4", got)
	}
	if got := local.psql(t, "puller", "postgres", "select count(*) from pg_database where datname like 'notes_dev__%'"); got != "0" {
		t.Errorf("scratch databases left behind: %s", got)
	}
}
