//go:build lab

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/loadtest"
)

// psqlOn runs SQL in database db of the cluster on port as postgres on a
// lab host and returns its unaligned, tuples-only output.
func psqlOn(t *testing.T, addr string, port int, db, sql string) string {
	t.Helper()
	return strings.TrimSpace(onHost(t, addr, fmt.Sprintf("cd / && runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -p %d -d %s <<'EOF'\n%s\nEOF", port, db, sql)))
}

// rewriteBackup writes a copy of the hoist backup at src to dst with
// edit applied to its SQL, keeping its gzip header (hoist's own).
func rewriteBackup(t *testing.T, src, dst string, edit func(sql string) string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sql, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Header = zr.Header
	zw.Write([]byte(edit(string(sql))))
	zw.Close()
	if err := os.WriteFile(dst, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// beforeEnd puts payload just before pg_dump's closing line, where the
// reviewer of issue 17 put it: the backup still verifies.
func beforeEnd(payload string) func(string) string {
	return func(sql string) string {
		const end = "-- PostgreSQL database dump complete"
		i := strings.LastIndex(sql, end)
		if i < 0 {
			panic("no closing line")
		}
		return sql[:i] + payload + "\n" + sql[i:]
	}
}

// TestHostileBackups is issue 17's proof: four crafted backups, each an
// otherwise valid hoist backup with hoist's header, are restored; none
// makes the app's role a superuser or runs anything on the host, and
// the data stays. An ordinary backup with extensions (one the app may
// make, one only a superuser may), a sequence and the app's tables
// still restores whole, owned by the app's role.
func TestHostileBackups(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	const pg = 5461
	a := newNotesApp(t, "hostile", 3741, hosts[:1], fmt.Sprintf("accessories:\n  db:\n    service: postgresql\n    port: %d\n    backup: {schedule: daily, keep: 20}\n", pg))
	want, dir, good := a.threeNotesFetched(t, h)
	onHost(t, h, "rm -f /var/log/postgresql/pwned-* /tmp/pwned-*")

	var key string
	if m := regexp.MustCompile(`(?m)^\\restrict (\S+)$`).FindStringSubmatch(readBackupSQL(t, good)); m != nil {
		key = m[1]
	} else {
		t.Fatalf("the backup has no \\restrict line: is its pg_dump older than 15.14?")
	}
	payloads := map[string]string{
		"superuser":       "RESET ROLE;\nALTER ROLE hostile SUPERUSER;",
		"copy to program": "COPY (SELECT 1) TO PROGRAM 'touch /var/log/postgresql/pwned-copy';",
		"shell":           "\\unrestrict " + key + "\n\\! touch /var/log/postgresql/pwned-shell /tmp/pwned-shell",
		"pipe":            "\\unrestrict " + key + "\n\\o | touch /var/log/postgresql/pwned-pipe /tmp/pwned-pipe\nSELECT 1;\n\\o",
		"connect":         "\\unrestrict " + key + "\n\\c - postgres\nALTER ROLE hostile SUPERUSER;",
	}
	for _, name := range []string{"superuser", "copy to program", "shell", "pipe", "connect"} {
		file := filepath.Join(dir, "hostile-"+strings.ReplaceAll(name, " ", "-")+".sql.gz")
		rewriteBackup(t, good, file, beforeEnd(payloads[name]))
		stdout, stderr, err := hoistTry(a.dir, "accessory", "restore", "db", file, "--yes")
		t.Logf("%s: restore: %v\n%s%s", name, err, stdout, stderr)
		if err == nil {
			// Accepted: then it may have changed the app's own
			// database only, nothing else.
			want = a.notes(t, h)
		}
		if got := a.notes(t, h); got != want {
			t.Errorf("%s: the notes are %q, want %q", name, got, want)
		}
		if got := psqlOn(t, h, pg, "postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'hostile';"); got != "f" {
			t.Errorf("%s: the app's role is a superuser: %q", name, got)
			psqlOn(t, h, pg, "postgres", "ALTER ROLE hostile NOSUPERUSER;") // for the next payload
		}
		if got := onHost(t, h, "ls /var/log/postgresql/ /tmp/ | grep pwned; rm -f /var/log/postgresql/pwned-* /tmp/pwned-*"); got != "" {
			t.Errorf("%s: the payload ran on the host: %s", name, got)
		}
	}

	// An ordinary backup restores whole: citext is trusted, so the
	// database's owner makes it; pg_buffercache is not, and the
	// operator made it, as postgres.
	psqlOn(t, h, pg, "hostile", `CREATE EXTENSION pg_buffercache;
SET ROLE hostile;
CREATE EXTENSION citext;
CREATE TABLE tags (id serial PRIMARY KEY, name citext UNIQUE);
INSERT INTO tags (name) VALUES ('Go'), ('Rust');`)
	want = a.notes(t, h)
	good = strings.TrimSpace(mustHoist(t, a.dir, "accessory", "backup", "db"))
	a.addNote(t, h, "after the backup")
	if stdout, stderr, err := hoistTry(a.dir, "accessory", "restore", "db", good, "--yes"); err != nil {
		t.Fatalf("restore of an ordinary backup: %v\n%s%s", err, stdout, stderr)
	}
	if got := a.notes(t, h); got != want {
		t.Fatalf("after restoring the ordinary backup the notes are %q, want %q", got, want)
	}
	if got := psqlOn(t, h, pg, "hostile", `SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension;
SELECT string_agg(name::text, ',' ORDER BY id) FROM tags WHERE name = 'go';
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') AND pg_get_userbyid(c.relowner) <> 'hostile';`); got != "citext,pg_buffercache,plpgsql\nGo\n0" {
		t.Errorf("restored: extensions, a citext match, tables and sequences not owned by the app's role:\n%s", got)
	}
	a.addNote(t, h, "note 4") // the sequence goes on from the backup's value
	if got := psqlOn(t, h, pg, "hostile", "SELECT max(id) FROM notes;"); got != "4" {
		t.Errorf("the restored sequence gave id %s to the next note, want 4", got)
	}
}

// threeNotesFetched sets up and deploys a, a notes app with accessory
// db, on h; adds three notes; and fetches a backup of db to a new
// directory: the notes, the directory and the backup's path.
func (a *appRepo) threeNotesFetched(t *testing.T, h string) (notes, dir, backup string) {
	t.Helper()
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	for i := 1; i <= 3; i++ {
		a.addNote(t, h, fmt.Sprintf("note %d", i))
	}
	notes = a.notes(t, h)
	dir = t.TempDir()
	backup = strings.TrimSpace(mustHoist(t, a.dir, "accessory", "backup", "db", "--fetch", "--to", dir))
	return notes, dir, backup
}

// hoistTry runs hoist with a time limit and returns what it did.
func hoistTry(dir string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return hoist(ctx, dir, args...)
}

// readBackupSQL returns the SQL in a backup.
func readBackupSQL(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBackupsKeptAndNamed is issue 18's proof for retention and names:
// with keep: 3, three restores and one backup leave the backup restored
// from, and the copies made before each restore are kept apart; two
// backups started in the same second get two names.
func TestBackupsKeptAndNamed(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	const pg = 5462
	a := newNotesApp(t, "kept", 3742, hosts[:1], fmt.Sprintf("accessories:\n  db:\n    service: postgresql\n    port: %d\n    backup: {schedule: daily, keep: 3}\n", pg))
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	a.addNote(t, h, "kept")
	restored := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "backup", "db"))
	for i := 0; i < 3; i++ {
		a.addNote(t, h, fmt.Sprintf("since %d", i))
		mustHoist(t, a.dir, "accessory", "restore", "db", restored, "--yes")
	}
	mustHoist(t, a.dir, "accessory", "backup", "db")
	list := mustHoist(t, a.dir, "accessory", "backups", "db")
	if !strings.Contains(list, restored) {
		t.Errorf("the backup restored from, %s, was pruned:\n%s", restored, list)
	}
	if n := strings.Count(list, "-before-restore.sql.gz"); n != 3 {
		t.Errorf("%d before-restore copies listed, want the 3 restores' own:\n%s", n, list)
	}
	if got := a.notes(t, h); got != "kept\n" {
		t.Errorf("notes after the restores: %q", got)
	}

	// Two at once: the timer's and the CLI's.
	before := onHost(t, h, "ls /var/lib/hoist/kept/accessories/db/backups | grep -vc before-restore || true")
	timer := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var out bytes.Buffer
		err := dialLab(t, h).Run(ctx, "systemctl start hoist-kept.db-backup.service", nil, &out, &out)
		timer <- fmt.Sprint(err, out.String())
	}()
	runs := hoistAtOnce(a.dir, 2, "accessory", "backup", "db")
	if got := <-timer; got != "<nil>" {
		t.Errorf("the timer's backup: %s", got)
	}
	names := map[string]bool{}
	for _, r := range runs {
		if r.err != nil {
			t.Errorf("a backup run at once failed: %v\n%s", r.err, r.stderr)
		}
		names[strings.TrimSpace(r.stdout)] = true
	}
	if len(names) != 2 {
		t.Errorf("two backups at once printed %v, want two names", names)
	}
	after := onHost(t, h, "ls -l /var/lib/hoist/kept/accessories/db/backups")
	t.Logf("before: %s after:\n%s", before, after)
	for n := range names {
		if !strings.Contains(after, n) {
			t.Errorf("backup %s is not on the host (keep 3 kept the newest)", n)
		}
	}

	// A full disk under the timer's backup: the failure is recorded
	// with its cause, status shows it, and setup warns. The dump is
	// large enough that the disk fills while pg_dump still writes.
	psqlOn(t, h, pg, "kept", "SET ROLE kept; CREATE TABLE bulk AS SELECT md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 60000);")
	backups := "/var/lib/hoist/kept/accessories/db/backups"
	onHost(t, h, "mount -t tmpfs -o size=4m,mode=0700 tmpfs "+backups+
		" && fallocate -l $(( $(df --output=avail -B1 "+backups+" | tail -n 1) )) "+backups+"/ballast || true")
	t.Cleanup(func() { onHost(t, h, "umount "+backups+" || true") })
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := dialLab(t, h).Run(ctx, "systemctl start hoist-kept.db-backup.service", nil, &out, &out); err == nil {
		t.Errorf("the timer's backup on a full disk succeeded:\n%s", out.String())
	}
	if got := onHost(t, h, "journalctl -u hoist-kept.db-backup.service -n 20 --no-pager -o cat"); !strings.Contains(got, "no space left on device") || strings.Contains(got, "broken pipe") {
		t.Errorf("the timer's journal does not give the cause:\n%s", got)
	}
	var st []struct {
		Accessory *struct {
			LastFailure *struct {
				Error     string `json:"error"`
				Scheduled bool   `json:"scheduled"`
			} `json:"last_failure"`
			BackupWarning string `json:"backup_warning"`
		} `json:"accessory"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "status", "--json")), &st); err != nil || len(st) != 1 || st[0].Accessory == nil {
		t.Fatalf("accessory status --json: %v %+v", err, st)
	}
	if f := st[0].Accessory.LastFailure; f == nil || !f.Scheduled || !strings.Contains(f.Error, "no space left on device") {
		t.Errorf("status's last failure: %+v, want the timer's, with its cause", f)
	}
	if w := st[0].Accessory.BackupWarning; !strings.Contains(w, "the last scheduled backup") {
		t.Errorf("status's backup warning: %q", w)
	}
	onHost(t, h, "umount "+backups)
	if _, stderr, err := hoistTry(a.dir, "setup"); err != nil || !strings.Contains(stderr, "warning: accessory db: the last scheduled backup") || !strings.Contains(stderr, "no space left on device") {
		t.Errorf("setup after a failed scheduled backup: %v, no warning:\n%s", err, stderr)
	}
}

// TestRestoreUnderTraffic is issue 18's proof that a restore has no
// window without a database: a client reads the notes without pause
// while a restore swaps the database; every answer is the old data or
// the new, none an error.
func TestRestoreUnderTraffic(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	const pg = 5463
	a := newNotesApp(t, "busy", 3743, hosts[:1], fmt.Sprintf("accessories:\n  db:\n    service: postgresql\n    port: %d\n", pg))
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	a.addNote(t, h, "old")
	backup := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "backup", "db"))
	a.addNote(t, h, "new since the backup")
	before, after := "old\nnew since the backup\n", "old\n" // the data before the restore, and the backup's
	read := func(c *http.Client, addr string) (string, error) {
		resp, err := c.Get(fmt.Sprintf("http://%s:%d/notes", addr, a.port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode != http.StatusOK {
			return "", &statusError{Code: resp.StatusCode, Body: string(b)}
		}
		return string(b), nil
	}
	for round := 0; round < 3; round++ {
		tr := startTraffic(t, []string{h}, read)
		// Traffic before, during and after the restore.
		loadtest.WaitServed(t, tr.loops, 10, time.Minute)
		mustHoist(t, a.dir, "accessory", "restore", "db", backup, "--yes")
		loadtest.WaitServed(t, tr.loops, 10, time.Minute)
		tr.finish()
		seen := tr.seen()
		t.Logf("round %d: %v", round, seen)
		tr.check(t, 20)
		for body := range seen { // bodies come trimmed
			if body != strings.TrimSpace(before) && body != strings.TrimSpace(after) {
				t.Errorf("an answer neither the old data nor the new: %q", body)
			}
		}
		if got := a.notes(t, h); got != after {
			t.Fatalf("after the restore: %q", got)
		}
		a.addNote(t, h, "new since the backup")
	}
}

// TestVerifyAndForeign is issue 18's proof of the verify drill, on a
// good backup and on damaged ones, and of importing ordinary pg_dump
// files (plain and custom format) under the same privilege rules.
func TestVerifyAndForeign(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	const pg = 5464
	a := newNotesApp(t, "drill", 3744, hosts[:1], fmt.Sprintf("accessories:\n  db:\n    service: postgresql\n    port: %d\n", pg))
	want, dir, local := a.threeNotesFetched(t, h)
	type drill struct {
		File   string `json:"file"`
		OK     bool   `json:"ok"`
		Tables int    `json:"tables"`
		Detail string `json:"detail"`
	}
	var v drill
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "restore", "db", "--verify", "--json")), &v); err != nil || !v.OK || v.Tables != 1 || v.File != filepath.Base(local) {
		t.Errorf("verify of the newest backup: %+v %v", v, err)
	}
	var st []struct {
		Accessory *struct {
			LastBackup *struct {
				Verified string `json:"verified"`
			} `json:"last_backup"`
			LastVerify *drill `json:"last_verify"`
		} `json:"accessory"`
	}
	status := func() {
		t.Helper()
		st = nil
		if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "status", "--json")), &st); err != nil || len(st) != 1 || st[0].Accessory == nil {
			t.Fatalf("accessory status --json: %v %+v", err, st)
		}
	}
	status()
	if lb := st[0].Accessory.LastBackup; lb == nil || lb.Verified == "" {
		t.Errorf("the verified backup is not marked so: %+v", lb)
	}

	// A row gone, the count recorded at dump time kept: refused.
	cut := filepath.Join(dir, "cut.sql.gz")
	rewriteBackup(t, local, cut, func(s string) string {
		i := strings.Index(s, "note 2")
		line := s[strings.LastIndex(s[:i], "\n")+1 : i+strings.Index(s[i:], "\n")+1]
		return strings.Replace(s, line, "", 1)
	})
	if stderr := failHoist(t, a.dir, "accessory", "restore", "db", cut, "--verify"); !strings.Contains(stderr, "table public.notes holds 2 rows in it, where 3 were dumped") {
		t.Errorf("verify of a backup with a row gone:\n%s", stderr)
	}
	// A row the database refuses (same count): the drill's restore
	// fails, on the host, and is recorded.
	broken := filepath.Join(dir, "broken.sql.gz")
	rewriteBackup(t, local, broken, func(s string) string {
		return regexp.MustCompile(`(\tnote 2\t)[^\n]+`).ReplaceAllString(s, "${1}not a time")
	})
	if stderr := failHoist(t, a.dir, "accessory", "restore", "db", broken, "--verify"); !strings.Contains(stderr, "failed its verify drill") || !strings.Contains(stderr, "not a time") {
		t.Errorf("verify of a backup PostgreSQL refuses:\n%s", stderr)
	}
	status()
	if lv := st[0].Accessory.LastVerify; lv == nil || lv.OK || !strings.Contains(lv.File, "broken") {
		t.Errorf("the failed drill is not recorded: %+v", lv)
	}
	if got := a.notes(t, h); got != want {
		t.Errorf("the drills changed the app's data: %q", got)
	}
	if got := psqlOn(t, h, pg, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'drill\\_\\_%';"); got != "0" {
		t.Errorf("%s scratch databases left", got)
	}

	// Ordinary pg_dump files, plain and custom, made on the host.
	for _, f := range []struct{ name, args string }{{"plain.sql", ""}, {"custom.dump", "-Fc"}} {
		b64 := onHost(t, h, fmt.Sprintf("cd / && runuser -u postgres -- pg_dump -p %d %s drill | base64 -w0", pg, f.args))
		raw, err := base64Decode(b64)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, f.name)
		os.WriteFile(path, raw, 0o600)
		a.addNote(t, h, "since the dump")
		if stdout, stderr, err := hoistTry(a.dir, "accessory", "restore", "db", path, "--foreign", "--yes"); err != nil {
			t.Errorf("restore --foreign %s: %v\n%s%s", f.name, err, stdout, stderr)
		}
		if got := a.notes(t, h); got != want {
			t.Errorf("after restore --foreign %s the notes are %q, want %q", f.name, got, want)
		}
	}
	// A foreign dump is held to the same rules.
	plain, _ := os.ReadFile(filepath.Join(dir, "plain.sql"))
	hostile := filepath.Join(dir, "hostile.sql")
	key := regexp.MustCompile(`(?m)^\\restrict (\S+)$`).FindSubmatch(plain)
	if key == nil {
		t.Fatal("the plain dump has no \\restrict line")
	}
	os.WriteFile(hostile, []byte(beforeEnd("\\unrestrict "+string(key[1])+"\n\\! touch /var/log/postgresql/pwned-foreign\nALTER ROLE drill SUPERUSER;")(string(plain))), 0o600)
	if _, _, err := hoistTry(a.dir, "accessory", "restore", "db", hostile, "--foreign", "--yes"); err == nil {
		t.Error("a hostile foreign dump was restored")
	}
	if got := onHost(t, h, "ls /var/log/postgresql/ | grep pwned || true"); got != "" {
		t.Errorf("the foreign dump's payload ran: %s", got)
	}
	if got := psqlOn(t, h, pg, "postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'drill';"); got != "f" {
		t.Errorf("the app's role is a superuser: %q", got)
	}
	if got := a.notes(t, h); got != want {
		t.Errorf("after the hostile foreign dump the notes are %q", got)
	}
}

func base64Decode(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

// TestOffsiteBackups is issue 18's proof that backups leave the host: a
// bucket (kumo's S3, on the lab's bridge) gets each backup encrypted to
// the operator's age key; cut in the middle of an upload, the backup
// stands on the host, the failure is reported, and the timer's next run
// catches up; a backup from the bucket restores with the identity.
func TestOffsiteBackups(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	addr := netip.MustParseAddr(h).As4()
	addr[3] = 1
	bridge := netip.AddrFrom4(addr).String()
	endpoint := kumotest.StartOn(t, bridge)
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint); o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("notes-backups")}); err != nil {
		t.Fatal(err)
	}
	cut := kumotest.StartCutter(t, bridge, strings.TrimPrefix(endpoint, "http://"), 256<<10)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "backups.age-key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	// The host's standard chain: root's ~/.aws.
	onHost(t, h, "mkdir -p /root/.aws && printf '[default]\\naws_access_key_id = kumo\\naws_secret_access_key = kumo\\n' > /root/.aws/credentials")
	const pg = 5465
	a := newNotesApp(t, "offsite", 3745, hosts[:1], fmt.Sprintf(`accessories:
  db:
    service: postgresql
    port: %d
    backup:
      schedule: daily
      offsite:
        bucket: notes-backups
        endpoint: http://%s
        recipient: %s
`, pg, cut.Addr(), id.Recipient().String()))
	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	a.addNote(t, h, "kept off the host")
	first := strings.TrimSpace(mustHoist(t, a.dir, "accessory", "backup", "db"))
	objects := func() []string {
		t.Helper()
		out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("notes-backups")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		return keys
	}
	if got := objects(); len(got) != 1 || got[0] != "offsite/db/"+first+".age" {
		t.Fatalf("the bucket holds %v after the first backup", got)
	}
	want := a.notes(t, h)

	// Big enough that the cut falls in the middle of its upload.
	psqlOn(t, h, pg, "offsite", "SET ROLE offsite; CREATE TABLE bulk AS SELECT md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 60000);")
	cut.Cutting.Store(true)
	stdout, stderr, err := hoistTry(a.dir, "accessory", "backup", "db")
	second := strings.TrimSpace(stdout)
	if err != nil || !strings.Contains(stderr, "its copy off the host failed") {
		t.Errorf("a backup whose upload is cut: %v, want it made and the failure said\n%s%s", err, stdout, stderr)
	}
	if got := onHost(t, h, "ls /var/lib/hoist/offsite/accessories/db/backups/"); !strings.Contains(got, second) {
		t.Errorf("the backup does not stand on the host:\n%s", got)
	}
	var st []struct {
		Accessory *struct {
			LastOffsite *struct {
				Error string `json:"error"`
			} `json:"last_offsite"`
			BackupWarning string `json:"backup_warning"`
		} `json:"accessory"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "accessory", "status", "--json")), &st); err != nil || len(st) != 1 || st[0].Accessory == nil {
		t.Fatalf("status --json: %v %+v", err, st)
	}
	if o := st[0].Accessory.LastOffsite; o == nil || !strings.Contains(o.Error, second) {
		t.Errorf("status's last copy off the host: %+v, want the failure naming %s", o, second)
	}
	if got := objects(); len(got) != 1 {
		t.Errorf("the bucket holds %v after the cut upload", got)
	}

	// The timer's next run catches up.
	cut.Cutting.Store(false)
	var out bytes.Buffer
	if err := dialLab(t, h).Run(ctx, "systemctl start hoist-offsite.db-backup.service", nil, &out, &out); err != nil {
		t.Fatalf("the timer's backup: %v\n%s", err, out.String())
	}
	got := objects()
	if len(got) != 3 || !slices.Contains(got, "offsite/db/"+second+".age") {
		t.Errorf("after the next run the bucket holds %v, want the missed backup too", got)
	}
	list := mustHoist(t, a.dir, "accessory", "backups", "db")
	if !strings.Contains(list, first+".age") || !strings.Contains(list, "offsite") {
		t.Errorf("accessory backups does not list the bucket:\n%s", list)
	}

	// From the bucket back into the database, with the identity.
	a.addNote(t, h, "since")
	if stdout, stderr, err := hoistTry(a.dir, "accessory", "restore", "db", first+".age", "--identity", idFile, "--yes"); err != nil {
		t.Fatalf("restore from the bucket: %v\n%s%s", err, stdout, stderr)
	}
	if got := a.notes(t, h); got != want {
		t.Errorf("restored from the bucket: %q, want %q", got, want)
	}
	if stderr := failHoist(t, a.dir, "accessory", "restore", "db", first+".age", "--yes"); !strings.Contains(stderr, "--identity") {
		t.Errorf("a restore from the bucket without the identity:\n%s", stderr)
	}
}
