package accessory

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/atomicfile"

	"github.com/hoistdev/hoist/internal/goldentest"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/services"
)

func pgSpec() *hostproto.AccessorySpec {
	return &hostproto.AccessorySpec{App: "shop", Name: "db", Service: "postgresql", Package: "postgresql", Port: 5432, Listen: "127.0.0.1",
		Database: "shop", Env: "DATABASE_URL", BackupSchedule: "daily", BackupKeep: 3}
}

func TestSpecValidate(t *testing.T) {
	tests := map[string]struct {
		edit func(s *hostproto.AccessorySpec)
		want string
	}{
		"valid":            {func(*hostproto.AccessorySpec) {}, ""},
		"public listen":    {func(s *hostproto.AccessorySpec) { s.Listen = "203.0.113.9" }, "is not a loopback or private address"},
		"public allow":     {func(s *hostproto.AccessorySpec) { s.Listen = "10.0.0.5"; s.Allow = []string{"0.0.0.0/0"} }, "is not a private network"},
		"unknown service":  {func(s *hostproto.AccessorySpec) { s.Service = "mysql" }, `unknown service "mysql"`},
		"name with a dot":  {func(s *hostproto.AccessorySpec) { s.Name = "a.b" }, "invalid accessory"},
		"database quoted":  {func(s *hostproto.AccessorySpec) { s.Database = `x"; DROP` }, "invalid database"},
		"schedule with %":  {func(s *hostproto.AccessorySpec) { s.BackupSchedule = "%n" }, "invalid backup schedule"},
		"package injected": {func(s *hostproto.AccessorySpec) { s.Package = "pg -o x" }, "invalid package"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := pgSpec()
			tt.edit(s)
			err := s.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAllowedNetworks(t *testing.T) {
	tests := map[string]struct {
		listen string
		allow  []string
		want   []string
	}{
		"loopback":        {"127.0.0.1", nil, nil},
		"private v4":      {"10.0.1.5", nil, []string{"10.0.1.0/24"}},
		"private v6":      {"fd00:1:2:3::5", nil, []string{"fd00:1:2:3::/64"}},
		"networks given":  {"10.0.1.5", []string{"10.0.0.0/16"}, []string{"10.0.0.0/16"}},
		"instance naming": {"127.0.0.1", nil, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := pgSpec()
			s.Listen, s.Allow = tt.listen, tt.allow
			if diff := cmp.Diff(tt.want, allowed(s)); diff != "" {
				t.Errorf("allowed (-want +got):\n%s", diff)
			}
		})
	}
}

// Two apps' accessories never share an instance, whatever their dashes.
func TestInstanceNamesDoNotCollide(t *testing.T) {
	a := &hostproto.AccessorySpec{App: "a-b", Name: "c"}
	b := &hostproto.AccessorySpec{App: "a", Name: "b-c"}
	if instance(a) == instance(b) || pgCluster(a) == pgCluster(b) {
		t.Errorf("%s and %s share %s / %s", "a-b:c", "a:b-c", instance(a), pgCluster(a))
	}
	if got := pgCluster(a); got != "a_b.c" {
		t.Errorf("cluster of a-b's c = %q, want a_b.c (no dash: systemd's %%I)", got)
	}
}

func TestSCRAMVerifier(t *testing.T) {
	// Computed apart with Python's hashlib (RFC 7677's salt and password).
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	got, err := scramVerifierSalt("pencil", salt, 4096)
	want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if err != nil || got != want {
		t.Errorf("verifier = %q, %v\nwant %q", got, err, want)
	}
	a, _ := scramVerifier("pencil")
	b, _ := scramVerifier("pencil")
	if a == b || strings.Contains(a, "pencil") {
		t.Errorf("two verifiers of one password share a salt, or hold it: %q %q", a, b)
	}
}

func TestURLs(t *testing.T) {
	pw := "p/w+x"
	pg := &postgres{s: pgSpec(), ver: "15", cluster: "shop.db"}
	if got := pg.url(pw); got != "postgres://shop:p%2Fw+x@127.0.0.1:5432/shop" {
		t.Errorf("postgres url = %s", got)
	}
	s := pgSpec()
	s.Service, s.Listen, s.Port = "redis", "fd00::5", 6380
	r := &redis{s: s, f: redisFlavor}
	if got := r.url(pw); got != "redis://:p%2Fw+x@[fd00::5]:6380/0" {
		t.Errorf("redis url = %s", got)
	}
}

func TestRenderedFiles(t *testing.T) {
	pg := &postgres{s: pgSpec(), ver: "15", cluster: "shop.db", owner: &user.User{Uid: "0", Gid: "0"}}
	conf, hba := pg.settings()
	goldentest.Check(t, "testdata/postgresql-hoist.conf", conf)
	goldentest.Check(t, "testdata/pg_hba.conf", hba)
	goldentest.Check(t, "testdata/postgresql-dropin.conf", renderDropIn(pg.hardening(), allowed(pg.s)))
	place := Place{Dir: "/var/lib/hoist/shop/accessories/db", Backups: "/var/lib/hoist/shop/accessories/db/backups", HoistBin: "/usr/local/bin/hoist",
		BackupRequest: `{"app":"shop","args":{"name":"db"}}`}
	svc, timer := renderBackupUnits(pg.s, place, pg.unit())
	goldentest.Check(t, "testdata/hoist-shop.db-backup.service", svc)
	goldentest.Check(t, "testdata/hoist-shop.db-backup.timer", timer)

	private := pgSpec()
	private.Listen = "10.0.1.5"
	pgp := &postgres{s: private, ver: "15", cluster: "shop.db"}
	_, hba = pgp.settings()
	goldentest.Check(t, "testdata/pg_hba-private.conf", hba)

	rs := &hostproto.AccessorySpec{App: "shop", Name: "cache", Service: "redis", Package: "redis-server", Port: 6379, Listen: "10.0.1.5",
		Allow: []string{"10.0.0.0/16"}, Env: "REDIS_URL"}
	r := &redis{s: rs, f: redisFlavor}
	goldentest.Check(t, "testdata/redis-dropin.conf", renderDropIn(r.hardening(), allowed(rs)))
	if r.unit() != "redis-server@shop.cache.service" || r.confFile() != "/etc/redis/redis-shop.cache.conf" {
		t.Errorf("redis unit %s, conf %s", r.unit(), r.confFile())
	}
	if pg.unit() != "postgresql@15-shop.db.service" || backupUnit(pg.s) != "hoist-shop.db-backup.service" {
		t.Errorf("postgres unit %s, backup unit %s", pg.unit(), backupUnit(pg.s))
	}
}

// makeBackup writes a backup as hoist does, with sql as the dump.
func makeBackup(t *testing.T, sql string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	meta, _ := json.Marshal(Meta{App: "shop", Accessory: "db", Database: "shop", Version: "15", Created: time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)})
	zw.Header.Comment = string(meta)
	zw.Write([]byte(sql))
	zw.Close()
	return b.Bytes()
}

const dump = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE notes (id int);\n" +
	"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n"

// Verify refuses every backup that is not whole, before anything reads
// it into a database.
func TestVerifyDetectsCutAndCorruptBackups(t *testing.T) {
	good := makeBackup(t, strings.Repeat("INSERT INTO notes VALUES (1); -- enough for several deflate blocks\n", 4000)+dump)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	tests := map[string]struct {
		data []byte
		want string // in the error; "" for a good backup
	}{
		"good":              {good, ""},
		"cut in the middle": {good[:len(good)/2], "it is cut short"},
		"cut at the end":    {good[:len(good)-4], "it is cut short"},
		"cut in the header": {good[:5], "it is empty or cut short"},
		"empty":             {nil, "it is empty or cut short"},
		"a byte flipped":    {flipped, "its content is damaged"},
		"bytes after it":    {append(bytes.Clone(good), "junk"...), "it has bytes after its end"},
		"dump unfinished":   {makeBackup(t, "--\n-- PostgreSQL database dump\n--\nCREATE TABLE notes (id int);\n"), "the dump in it stopped before its end"},
		"not gzip":          {[]byte("CREATE TABLE x();\n-- PostgreSQL database dump complete\n"), "it is not a gzip file"},
		"no hoist header":   {gzipOf(dump), "it has no hoist header"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			meta, n, err := Verify(bytes.NewReader(tt.data), "db-x.sql.gz")
			if tt.want == "" {
				if err != nil || meta.Database != "shop" || n == 0 {
					t.Errorf("good backup: meta %+v, %d bytes, %v", meta, n, err)
				}
				return
			}
			var be *BadBackupError
			if !errors.As(err, &be) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Errorf("Verify = %v, want a BadBackupError saying %q", err, tt.want)
			}
		})
	}
}

func gzipOf(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// An upload is stored only when whole and verified.
func TestReceiveBackup(t *testing.T) {
	p := Place{Backups: filepath.Join(t.TempDir(), "backups")}
	good := makeBackup(t, dump)
	if _, err := ReceiveBackup(p, "db-1.sql.gz", int64(len(good)), bytes.NewReader(good[:10])); err == nil || !strings.Contains(err.Error(), "the upload ended after 10") {
		t.Errorf("a short upload: %v", err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-6] ^= 1 // the CRC
	if _, err := ReceiveBackup(p, "db-2.sql.gz", int64(len(bad)), bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged upload: %v", err)
	}
	if _, err := ReceiveBackup(p, "../etc/passwd.sql.gz", 1, bytes.NewReader(good)); err == nil {
		t.Error("a path was taken as a backup name")
	}
	bi, err := ReceiveBackup(p, "db-20261125T010203Z.sql.gz", int64(len(good)), bytes.NewReader(good))
	if err != nil || bi.Size != int64(len(good)) || bi.File != "uploaded-db-20261125T010203Z.sql.gz" {
		t.Fatalf("a good upload: %+v, %v", bi, err)
	}
	bs, err := ListBackups(p.Backups)
	if err != nil || len(bs) != 1 || bs[0].File != bi.File || bs[0].Kind != KindUploaded || !bs[0].Created.Equal(time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)) {
		t.Errorf("backups after three uploads = %+v, %v; want only the good one, as an upload", bs, err)
	}
	// The same file again replaces nothing.
	again, err := ReceiveBackup(p, "db-20261125T010203Z.sql.gz", int64(len(good)), bytes.NewReader(good))
	if err != nil || again.File != "uploaded-db-20261125T010203Z-2.sql.gz" {
		t.Errorf("the same upload again: %+v, %v", again, err)
	}
}

// Two backups of one second never share a name: the second takes the
// next free one, and neither replaces the other.
func TestBackupNamesAreUnique(t *testing.T) {
	dir := t.TempDir()
	names := backupNames(pgSpec(), time.Date(2026, 12, 7, 1, 59, 17, 0, time.UTC), "")
	var got []string
	for i := 0; i < 3; i++ {
		f, err := atomicfile.Create(filepath.Join(dir, names(1)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "backup %d", i)
		name, err := commitUnique(f, dir, names)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	if diff := cmp.Diff([]string{"db-20261207T015917Z.sql.gz", "db-20261207T015917Z-2.sql.gz", "db-20261207T015917Z-3.sql.gz"}, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	for i, name := range got {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != fmt.Sprintf("backup %d", i) {
			t.Errorf("%s holds %q: a backup replaced another", name, b)
		}
		if k := kindOf(name); k != KindBackup {
			t.Errorf("%s is of kind %s", name, k)
		}
	}
	before := backupNames(pgSpec(), time.Date(2026, 12, 7, 1, 59, 17, 0, time.UTC), "-before-restore")
	if n := before(2); n != "db-20261207T015917Z-2-before-restore.sql.gz" || kindOf(n) != KindBeforeRestore {
		t.Errorf("a second before-restore copy is %s, of kind %s", n, kindOf(n))
	}
}

// Retention counts the accessory's own backups, and keeps the copies
// made before restores and the uploads apart, each with its own limit;
// the backup a restore used stays whatever its age.
func TestPruneKeepsTheNewestOfEachKind(t *testing.T) {
	dir := t.TempDir()
	var files []string
	day := func(i int) string { return time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC).Format("20060102T150405Z") }
	for i := 0; i < 4; i++ {
		files = append(files, "db-"+day(i)+".sql.gz")
	}
	for i := 4; i < 11; i++ {
		files = append(files, "db-"+day(i)+"-before-restore.sql.gz")
	}
	for i := 11; i < 18; i++ {
		files = append(files, fmt.Sprintf("uploaded-x%d.sql.gz", i))
	}
	for i, name := range files {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
		mt := time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC)
		os.Chtimes(filepath.Join(dir, name), mt, mt)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600)
	if err := prune(dir, 2, "db-"+day(0)+".sql.gz"); err != nil {
		t.Fatal(err)
	}
	bs, _ := ListBackups(dir)
	kept := map[string][]string{}
	for _, b := range bs {
		kept[b.Kind] = append(kept[b.Kind], b.File)
	}
	want := map[string][]string{
		KindBackup:        {"db-" + day(0) + ".sql.gz", "db-" + day(2) + ".sql.gz", "db-" + day(3) + ".sql.gz"},
		KindBeforeRestore: {"db-" + day(6) + "-before-restore.sql.gz", "db-" + day(7) + "-before-restore.sql.gz", "db-" + day(8) + "-before-restore.sql.gz", "db-" + day(9) + "-before-restore.sql.gz", "db-" + day(10) + "-before-restore.sql.gz"},
		KindUploaded:      {"uploaded-x13.sql.gz", "uploaded-x14.sql.gz", "uploaded-x15.sql.gz", "uploaded-x16.sql.gz", "uploaded-x17.sql.gz"},
	}
	if diff := cmp.Diff(want, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Error("prune removed a file that is not a backup")
	}
}

// Backups made in one second carry the same time, to the second: the
// order their names were taken in (NAME, NAME-2 ... NAME-10) tells the
// newest, not the names' spelling, in which NAME.sql.gz sorts after
// NAME-4.sql.gz and NAME-10 before NAME-2.
func TestPruneOrdersOneSecondByName(t *testing.T) {
	dir := t.TempDir()
	names := backupNames(pgSpec(), time.Date(2026, 12, 7, 18, 8, 4, 0, time.UTC), "")
	mt := time.Date(2026, 12, 7, 18, 8, 4, 0, time.UTC)
	for n := 1; n <= 11; n++ {
		os.WriteFile(filepath.Join(dir, names(n)), nil, 0o600)
		os.Chtimes(filepath.Join(dir, names(n)), mt, mt)
	}
	if err := prune(dir, 3); err != nil {
		t.Fatal(err)
	}
	bs, _ := ListBackups(dir)
	var kept []string
	for _, b := range bs {
		kept = append(kept, b.File)
	}
	if diff := cmp.Diff([]string{names(9), names(10), names(11)}, kept); diff != "" {
		t.Errorf("kept of eleven backups of one second (-want +got):\n%s", diff)
	}
}

// pg_dump's own \restrict and \unrestrict lines are dropped, for hoist's
// own key; any other backslash command reaches psql, which refuses it.
func TestRestrictFilter(t *testing.T) {
	in := "--\n-- PostgreSQL database dump\n--\n\n\\restrict K1\n\nSET x = 1;\n\\restrict K2\nCOPY t (a) FROM stdin;\n\\\\unrestrict K1\n\\.\n" +
		"\\unrestrict K1\n\\! touch /tmp/x\n\\unrestrict OTHER\n-- PostgreSQL database dump complete\n\n\\unrestrict K1\n"
	want := "--\n-- PostgreSQL database dump\n--\n\n\nSET x = 1;\n\\restrict K2\nCOPY t (a) FROM stdin;\n\\\\unrestrict K1\n\\.\n" +
		"\\! touch /tmp/x\n\\unrestrict OTHER\n-- PostgreSQL database dump complete\n\n"
	got, err := io.ReadAll(newRestrictFilter(strings.NewReader(in)))
	if err != nil || string(got) != want {
		t.Errorf("filtered:\n%s\nwant:\n%s (%v)", got, want, err)
	}
}

// The scanner finds pg_dump's closing line and counts each table's rows.
func TestDumpScanner(t *testing.T) {
	sql := "--\nCOPY public.notes (id, body) FROM stdin;\n1\ta\n2\tCOPY x FROM stdin;\n\\.\nCOPY public.\"Empty\" FROM stdin;\n\\.\n" +
		"CREATE INDEX i ON public.notes (id);\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n"
	for _, chunk := range []int{1, 7, len(sql)} {
		d := &dumpScanner{}
		for i := 0; i < len(sql); i += chunk {
			d.Write([]byte(sql[i:min(i+chunk, len(sql))]))
		}
		d.flush()
		if !d.complete || !cmp.Equal(d.rows, map[string]int64{"public.notes": 2, `public."Empty"`: 0}) {
			t.Errorf("chunks of %d: complete %v, rows %v", chunk, d.complete, d.rows)
		}
	}
	d := &dumpScanner{}
	d.Write([]byte("-- PostgreSQL database dump complete\nSELECT 1;\n"))
	if d.complete {
		t.Error("SQL after the closing line: complete")
	}
}

// A backup whose rows do not match the counts recorded at dump time is
// damaged, whatever its gzip checksum says.
func TestVerifyComparesRows(t *testing.T) {
	body := "COPY public.notes (id) FROM stdin;\n1\n2\n\\.\n" + dump
	good := makeBackup(t, body+rowsLine+`{"public.notes":2}`+"\n")
	meta, _, err := Verify(bytes.NewReader(good), "db-x.sql.gz")
	if err != nil || meta.Rows["public.notes"] != 2 {
		t.Errorf("good: %+v %v", meta, err)
	}
	short := makeBackup(t, strings.Replace(body, "2\n", "", 1)+rowsLine+`{"public.notes":2}`+"\n")
	if _, _, err := Verify(bytes.NewReader(short), "db-x.sql.gz"); err == nil || !strings.Contains(err.Error(), "table public.notes holds 1 rows in it, where 2 were dumped") {
		t.Errorf("a row missing: %v", err)
	}
}

// A disk too small for the restore is refused before anything changes.
func TestCheckRoom(t *testing.T) {
	free := func(have uint64) func(string) (uint64, error) {
		return func(string) (uint64, error) { return have, nil }
	}
	need := roomFor(100 << 20)
	if err := checkRoom("/var/lib/postgresql", need, free(need)); err != nil {
		t.Errorf("enough room: %v", err)
	}
	err := checkRoom("/var/lib/postgresql", need, free(need-1))
	var re *RoomError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "needs about 214.0 MiB free under /var/lib/postgresql") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("too little room: %v", err)
	}
}

// setup and deploy warn when the last scheduled backup failed, or the
// newest is older than twice the schedule's period.
func TestBackupWarning(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	fresh := &hostproto.BackupInfo{File: "db-1.sql.gz", Created: now.Add(-30 * time.Hour)}
	old := &hostproto.BackupInfo{File: "db-0.sql.gz", Created: now.Add(-49 * time.Hour)}
	tests := map[string]struct {
		last   *hostproto.BackupRun
		newest *hostproto.BackupInfo
		since  time.Time
		want   string
	}{
		"fresh":             {&hostproto.BackupRun{At: now, File: "db-1.sql.gz"}, fresh, now.Add(-100 * day), ""},
		"failed":            {&hostproto.BackupRun{At: now, Error: "backup of db: write to /b: no space left on device"}, fresh, time.Time{}, "the last scheduled backup, at 2026-12-07T12:00:00Z, failed: backup of db: write to /b: no space left on device"},
		"too old":           {nil, old, time.Time{}, "the newest backup is from 2026-12-05T11:00:00Z, 49h0m0s ago: more than twice the schedule's period (daily, every 24h0m0s)"},
		"none since setup":  {nil, nil, now.Add(-3 * day), "no backup since setup at 2026-12-04T12:00:00Z"},
		"none, setup today": {nil, nil, now.Add(-time.Hour), ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := backupWarning("daily", day, tt.last, tt.newest, tt.since, now)
			if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
				t.Errorf("backupWarning = %q, want %q", got, tt.want)
			}
		})
	}
	out := "  Original form: daily\nNormalized form: *-*-* 00:00:00\n    Next elapse: Tue 2026-12-08 00:00:00 UTC\n       From now: 14h left\n       Iter. #2: Wed 2026-12-09 00:00:00 UTC\n"
	if p := periodOf(out); p != day {
		t.Errorf("period of daily = %s", p)
	}
}

// The protocol accepts a spec of any service internal/services names
// (hostproto.AccessorySpec.Validate); each must be one this package
// runs, or Setup would find no service for it.
func TestEveryKnownServiceRuns(t *testing.T) {
	for _, name := range services.Names() {
		if serviceOf[name] == nil {
			t.Errorf("service %s is known to internal/services and not run by accessory", name)
		}
	}
	if len(serviceOf) != len(services.Names()) {
		t.Errorf("accessory runs %d services, internal/services names %d", len(serviceOf), len(services.Names()))
	}
}
