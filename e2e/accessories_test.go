//go:build lab

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notesAccessories are examples/notes' accessories as its hoist.yml has
// them.
const notesAccessories = `accessories:
  db:
    service: postgresql
    backup: {schedule: daily, keep: 5}
  cache:
    service: redis
`

// newNotesApp copies examples/notes into a fresh repository with a
// hoist.yml for hosts, and commits.
func newNotesApp(t *testing.T, name string, port int, hosts []string, extra string) *appRepo {
	t.Helper()
	a := &appRepo{dir: filepath.Join(work, "apps", name), name: name, port: port}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.go", "redis.go", "go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "notes", f))
		if err != nil {
			t.Fatal(err)
		}
		a.write(t, f, string(b))
	}
	a.write(t, "hoist.yml", notesConfig(name, port, hosts)+extra)
	a.git(t, "init", "-q", "-b", "main")
	a.git(t, "config", "user.name", "Ada Lovelace")
	a.git(t, "config", "user.email", "ada@example.invalid")
	a.commit(t, "initial")
	return a
}

func notesConfig(name string, port int, hosts []string) string {
	return fmt.Sprintf(`version: 1
app: %s
hosts: [%s]
build:
  command: CGO_ENABLED=0 go build -trimpath -o dist/notes .
  output: dist
run:
  command: ./notes
  port: %d
hooks:
  before_switch: ./notes migrate
health:
  timeout: 30s
  interval: 300ms
keep_releases: 3
`, name, strings.Join(hosts, ", "), port)
}

// call sends one request to the app on addr and returns the status and
// body, or the error as the body.
func (a *appRepo) call(method, addr, path, body string) (int, string) {
	req, err := http.NewRequest(method, fmt.Sprintf("http://%s:%d%s", addr, a.port, path), strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// notes returns the notes the app on addr lists, failing the test when
// it cannot.
func (a *appRepo) notes(t *testing.T, addr string) string {
	t.Helper()
	code, body := a.call("GET", addr, "/notes", "")
	if code != http.StatusOK {
		t.Fatalf("GET /notes on %s: %d %s", addr, code, body)
	}
	return body
}

func (a *appRepo) addNote(t *testing.T, addr, note string) {
	t.Helper()
	if code, body := a.call("POST", addr, "/notes", note); code != http.StatusCreated {
		t.Fatalf("POST /notes on %s: %d %s", addr, code, body)
	}
}

// onHost runs a shell command on a lab host as root and returns its
// output.
func onHost(t *testing.T, addr, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if err := dialLab(t, addr).Run(ctx, script, nil, &out, &errb); err != nil {
		t.Fatalf("on %s: %s: %v\n%s%s", addr, script, err, out.String(), errb.String())
	}
	return out.String()
}

// TestAccessoriesKeepTheirData is the proof: an app with
// PostgreSQL (and Redis) from Debian's packages deployed, rows written
// through it, three more deploys, a setup re-run and an upgrade of hoist
// with the rows intact; a backup, the database dropped by hand, a
// restore, the rows back; the backup fetched and restored into a fresh
// host with the same data; and what is refused, with the data intact.
func TestAccessoriesKeepTheirData(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	a := newNotesApp(t, "notes", 3700, hosts[:1], notesAccessories)
	var outputs strings.Builder // everything hoist printed, to look for the password
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		stdout, stderr, err := hoist(ctx, a.dir, args...)
		outputs.WriteString(stdout + stderr)
		if err != nil {
			t.Fatalf("hoist %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
		}
		return stdout
	}
	run("setup")
	run("deploy")
	for i := 1; i <= 5; i++ {
		a.addNote(t, h, fmt.Sprintf("note %d", i))
	}
	want := a.notes(t, h)
	if want != "note 1\nnote 2\nnote 3\nnote 4\nnote 5\n" {
		t.Fatalf("notes = %q", want)
	}
	visit := func() string { _, body := a.call("GET", h, "/visits", ""); return strings.TrimSpace(body) }
	if got := visit(); got != "visits: 1" {
		t.Fatalf("first visit: %q", got)
	}

	// Loopback only, and the URL in a root-only file.
	if got := onHost(t, h, "ss -Hltn 'sport = :5432' | awk '{print $4}'; ss -Hltn 'sport = :6379' | awk '{print $4}'"); got != "127.0.0.1:5432\n127.0.0.1:6379\n" {
		t.Errorf("PostgreSQL and Redis listen on %q, want loopback only", got)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(h, "5432"), 2*time.Second); err == nil {
		c.Close()
		t.Errorf("PostgreSQL answers on %s:5432 from outside the host", h)
	}
	if got := onHost(t, h, "stat -c '%a %U' /var/lib/hoist/notes/shared/accessories.env; cut -d= -f1 /var/lib/hoist/notes/shared/accessories.env"); got != "600 root\nDATABASE_URL\nREDIS_URL\n" {
		t.Errorf("accessories.env: %q, want 0600 root with DATABASE_URL and REDIS_URL", got)
	}
	for unit, max := range map[string]float64{"postgresql@15-notes.db.service": 2.0, "redis-server@notes.cache.service": 2.0} {
		out := onHost(t, h, "systemd-analyze security --no-pager "+unit+" | tail -n 1")
		var score float64
		if _, err := fmt.Sscanf(out[strings.Index(out, "level for")+len("level for "+unit+": "):], "%g", &score); err != nil || score > max {
			t.Errorf("%s: %q, want an exposure of at most %.1f", unit, out, max)
		}
	}

	// Three more deploys, a setup re-run and a hoist upgrade.
	for i := 0; i < 3; i++ {
		a.change(t)
		run("deploy")
		if got := a.notes(t, h); got != want {
			t.Fatalf("after deploy %d the notes are %q, want %q", i+2, got, want)
		}
	}
	run("setup")
	if got := a.notes(t, h); got != want {
		t.Fatalf("after setup again the notes are %q", got)
	}
	upgraded := filepath.Join(work, "hoist-upgraded")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/hoistdev/hoist/internal/cli.Version=upgraded", "-o", upgraded, "../cmd/hoist")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the upgrade: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, stderr, err := hoist(ctx, a.dir, "setup", "--hoist-binary", upgraded); err != nil || !strings.Contains(stderr, "installed hoist") {
		t.Fatalf("setup with an upgraded hoist: %v\n%s", err, stderr)
	}
	if got := onHost(t, h, "/usr/local/bin/hoist --version"); !strings.Contains(got, "upgraded") {
		t.Fatalf("the host runs %q, not the upgrade", got)
	}
	run("setup") // and back to this hoist, which the other verbs speak with
	if got := a.notes(t, h); got != want {
		t.Fatalf("after the upgrade the notes are %q", got)
	}
	if got := visit(); got != "visits: 2" {
		t.Errorf("Redis lost its count across deploys, setups and the upgrade: %q", got)
	}

	// A backup, the database dropped by hand, a restore.
	fetched := t.TempDir()
	local := strings.TrimSpace(run("accessory", "backup", "db", "--fetch", "--to", fetched))
	backup := filepath.Base(local)
	if fi, err := os.Stat(local); err != nil || fi.Size() == 0 || !strings.HasSuffix(backup, ".sql.gz") {
		t.Fatalf("fetched backup %q: %v", local, err)
	}
	onHost(t, h, `cd / && runuser -u postgres -- psql -X -q -p 5432 -c 'DROP DATABASE notes WITH (FORCE)'`)
	if code, _ := a.call("GET", h, "/notes", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("with the database dropped GET /notes answered %d", code)
	}
	run("accessory", "restore", "db", backup)
	if got := a.notes(t, h); got != want {
		t.Fatalf("after the restore the notes are %q, want %q", got, want)
	}

	// What is refused leaves the data as it is.
	a.addNote(t, h, "note 6")
	want += "note 6\n"
	blob, _ := os.ReadFile(local)
	cut := filepath.Join(fetched, "cut.sql.gz")
	os.WriteFile(cut, blob[:len(blob)/2], 0o600)
	damaged := filepath.Join(fetched, "damaged.sql.gz")
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 0x55
	os.WriteFile(damaged, bad, 0o600)
	for args, why := range map[string]string{
		"accessory restore db " + cut + " --yes":     "it is cut short",
		"accessory restore db " + damaged + " --yes": "its content is damaged",
		"accessory restore db " + backup:             "is not empty",
	} {
		stderr := failHoist(t, a.dir, strings.Fields(args)...)
		if !strings.Contains(stderr, why) || !(strings.Contains(stderr, "nothing was changed") || strings.Contains(stderr, "left as it is")) {
			t.Errorf("hoist %s: stderr does not say %q and that nothing changed:\n%s", args, why, stderr)
		}
		if got := a.notes(t, h); got != want {
			t.Fatalf("after the refused %s the notes are %q, want %q", args, got, want)
		}
	}

	// The backup restored into a fresh host gives the same data.
	b := newNotesApp(t, "notescopy", 3701, hosts[1:2], "accessories:\n  db:\n    service: postgresql\n")
	mustHoist(t, b.dir, "setup")
	mustHoist(t, b.dir, "deploy")
	mustHoist(t, b.dir, "accessory", "restore", "db", local, "--yes")
	wantCopy := strings.TrimSuffix(want, "note 6\n")
	if got := b.notes(t, hosts[1]); got != wantCopy {
		t.Errorf("the fresh host's notes are %q, want the backup's %q", got, wantCopy)
	}

	// What hoist reports.
	var st []struct {
		Name      string `json:"name"`
		Accessory *struct {
			State      string `json:"state"`
			Backups    int    `json:"backups"`
			NextBackup string `json:"next_backup"`
		} `json:"accessory"`
	}
	if err := json.Unmarshal([]byte(run("accessory", "status", "--json")), &st); err != nil || len(st) != 2 {
		t.Fatalf("accessory status --json: %v %+v", err, st)
	}
	for _, s := range st {
		if s.Accessory == nil || s.Accessory.State != "active" {
			t.Errorf("accessory %s: %+v, want active", s.Name, s.Accessory)
		}
		if s.Name == "db" && (s.Accessory.Backups < 1 || s.Accessory.NextBackup == "") {
			t.Errorf("db: %d backups, next %q; want the fetched one, and a timer", s.Accessory.Backups, s.Accessory.NextBackup)
		}
	}
	if logs := run("accessory", "logs", "db", "-n", "200"); !strings.Contains(logs, "database system is ready to accept connections") {
		t.Errorf("accessory logs db does not show PostgreSQL's own lines:\n%s", logs)
	}
	audit := run("audit", "-n", "0")
	for _, op := range []string{"setup", "accessory setup", "deploy", "accessory restore"} {
		if !strings.Contains(audit, op) {
			t.Errorf("the audit trail has no %q:\n%s", op, audit)
		}
	}
	if !strings.Contains(audit, "Ada Lovelace <ada@example.invalid>") {
		t.Errorf("the audit trail does not name who:\n%s", audit)
	}

	// The password never shows: not in hoist's output, not in the journal.
	password := strings.TrimSpace(onHost(t, h, "cat /var/lib/hoist/notes/accessories/db/password"))
	journal := onHost(t, h, "journalctl --no-pager -o cat")
	for where, text := range map[string]string{"hoist's output": outputs.String(), "the journal": journal} {
		if len(password) < 24 || strings.Contains(text, password) {
			t.Errorf("the database password appears in %s", where)
		}
	}
}

// TestAccessoryRefusals: an accessory whose package cannot be
// installed, and one whose port another holds, are clear errors that
// change nothing.
func TestAccessoryRefusals(t *testing.T) {
	hosts := needLab(t)
	a := newNotesApp(t, "refused", 3702, hosts[1:2], "accessories:\n  db:\n    service: postgresql\n    port: 5440\n  db2:\n    service: postgresql\n    port: 5440\n    env: OTHER_URL\n")
	stderr := failHoist(t, a.dir, "setup")
	if !strings.Contains(stderr, "accessory db2: port 5440 on 127.0.0.1 is taken by postgresql@15-refused.db.service; nothing was changed") {
		t.Errorf("a port clash:\n%s", stderr)
	}
	if got := onHost(t, hosts[1], "ls /etc/postgresql/15/"); strings.Contains(got, "refused.db2") {
		t.Errorf("the refused accessory made a cluster: %s", got)
	}
	// Debian 12 has no valkey package.
	a.write(t, "hoist.yml", notesConfig("refused", 3702, hosts[1:2])+"accessories:\n  db:\n    service: postgresql\n    port: 5440\n  kv:\n    service: valkey\n    port: 6390\n")
	a.commit(t, "valkey")
	stderr = failHoist(t, a.dir, "setup")
	if !strings.Contains(stderr, "accessory kv: the package valkey-server cannot be installed on this host") || !strings.Contains(stderr, "Unable to locate package valkey-server") {
		t.Errorf("a package that cannot be installed:\n%s", stderr)
	}
	if got := mustHoist(t, a.dir, "accessory", "status", "db"); !strings.Contains(got, "active") {
		t.Errorf("the accessory that was set up stopped:\n%s", got)
	}
}

// TestAccessoryOnAPrivateNetwork: PostgreSQL on one lab host, listening
// on its private address, serves the app on the other; a machine outside
// the allowed networks (this one, on the lab's bridge) is refused.
func TestAccessoryOnAPrivateNetwork(t *testing.T) {
	hosts := needLab(t)
	app, db := hosts[0], hosts[1]
	a := newNotesApp(t, "remote", 3730, hosts[:1], fmt.Sprintf(`accessories:
  db:
    service: postgresql
    host: %s
    port: 5450
    listen: %s
    allow: [%s/32]
`, db, db, app))
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	a.addNote(t, app, "across the private network")
	if got := a.notes(t, app); got != "across the private network\n" {
		t.Errorf("notes = %q", got)
	}
	if got := onHost(t, db, "ss -Hltn 'sport = :5450' | awk '{print $4}'"); got != db+":5450\n" {
		t.Errorf("PostgreSQL listens on %q, want %s:5450 only", got, db)
	}
	if got := onHost(t, app, "grep -o '@[^/]*/' /var/lib/hoist/remote/shared/accessories.env"); got != "@"+db+":5450/\n" {
		t.Errorf("the app reaches its database at %q", got)
	}
	// This machine is on the lab's bridge, outside allow: systemd's
	// address filter drops it where it can attach (not in the lab's
	// containers), pg_hba.conf refuses it anyway.
	if msg := pgStartup(t, net.JoinHostPort(db, "5450"), "remote", "remote"); !strings.Contains(msg, "no pg_hba.conf entry") && !strings.HasPrefix(msg, "no connection") {
		t.Errorf("a peer outside allow was answered %q, want it refused", msg)
	}
}

// pgStartup sends PostgreSQL's startup message (protocol 3.0, no TLS)
// and returns the server's first answer as text, or why there was none.
func pgStartup(t *testing.T, addr, user, db string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "no connection: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	body := []byte{0, 3, 0, 0} // protocol 3.0
	for _, kv := range []string{"user", user, "database", db} {
		body = append(append(body, kv...), 0)
	}
	body = append(body, 0)
	msg := append([]byte{0, 0, 0, 0}, body...)
	n := len(msg)
	msg[0], msg[1], msg[2], msg[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	if _, err := c.Write(msg); err != nil {
		return "write: " + err.Error()
	}
	answer, _ := io.ReadAll(io.LimitReader(c, 4096))
	return string(answer)
}
