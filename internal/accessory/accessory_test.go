package accessory

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func pgSpec() *Spec {
	return &Spec{App: "shop", Name: "db", Service: "postgresql", Package: "postgresql", Port: 5432, Listen: "127.0.0.1",
		Database: "shop", Env: "DATABASE_URL", BackupSchedule: "daily", BackupKeep: 3}
}

func TestSpecValidate(t *testing.T) {
	tests := map[string]struct {
		edit func(s *Spec)
		want string
	}{
		"valid":            {func(*Spec) {}, ""},
		"public listen":    {func(s *Spec) { s.Listen = "203.0.113.9" }, "is not a loopback or private address"},
		"public allow":     {func(s *Spec) { s.Listen = "10.0.0.5"; s.Allow = []string{"0.0.0.0/0"} }, "is not a private network"},
		"unknown service":  {func(s *Spec) { s.Service = "mysql" }, `unknown service "mysql"`},
		"name with a dot":  {func(s *Spec) { s.Name = "a.b" }, "invalid accessory"},
		"database quoted":  {func(s *Spec) { s.Database = `x"; DROP` }, "invalid database"},
		"schedule with %":  {func(s *Spec) { s.BackupSchedule = "%n" }, "invalid backup schedule"},
		"package injected": {func(s *Spec) { s.Package = "pg -o x" }, "invalid package"},
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
			if diff := cmp.Diff(tt.want, s.allowed()); diff != "" {
				t.Errorf("allowed (-want +got):\n%s", diff)
			}
		})
	}
}

// Two apps' accessories never share an instance, whatever their dashes.
func TestInstanceNamesDoNotCollide(t *testing.T) {
	a := &Spec{App: "a-b", Name: "c"}
	b := &Spec{App: "a", Name: "b-c"}
	if a.Instance() == b.Instance() || pgCluster(a) == pgCluster(b) {
		t.Errorf("%s and %s share %s / %s", "a-b:c", "a:b-c", a.Instance(), pgCluster(a))
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

// golden compares got with testdata/name; -update rewrites it.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", p, diff)
	}
}

func TestRenderedFiles(t *testing.T) {
	pg := &postgres{s: pgSpec(), ver: "15", cluster: "shop.db", owner: &user.User{Uid: "0", Gid: "0"}}
	conf, hba := pg.settings()
	golden(t, "postgresql-hoist.conf", conf)
	golden(t, "pg_hba.conf", hba)
	golden(t, "postgresql-dropin.conf", renderDropIn(pg.hardening(), pg.s.allowed()))
	place := Place{Backups: "/var/lib/hoist/shop/accessories/db/backups", HoistBin: "/usr/local/bin/hoist",
		BackupRequest: `{"app":"shop","args":{"name":"db"}}`}
	svc, timer := renderBackupUnits(pg.s, place, pg.unit())
	golden(t, "hoist-shop.db-backup.service", svc)
	golden(t, "hoist-shop.db-backup.timer", timer)

	private := pgSpec()
	private.Listen = "10.0.1.5"
	pgp := &postgres{s: private, ver: "15", cluster: "shop.db"}
	_, hba = pgp.settings()
	golden(t, "pg_hba-private.conf", hba)

	rs := &Spec{App: "shop", Name: "cache", Service: "redis", Package: "redis-server", Port: 6379, Listen: "10.0.1.5",
		Allow: []string{"10.0.0.0/16"}, Env: "REDIS_URL"}
	r := &redis{s: rs, f: redisFlavor}
	golden(t, "redis-dropin.conf", renderDropIn(r.hardening(), rs.allowed()))
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
	bi, err := ReceiveBackup(p, "db-3.sql.gz", int64(len(good)), bytes.NewReader(good))
	if err != nil || bi.Size != int64(len(good)) {
		t.Fatalf("a good upload: %+v, %v", bi, err)
	}
	bs, err := ListBackups(p.Backups)
	if err != nil || len(bs) != 1 || bs[0].File != "db-3.sql.gz" || !bs[0].Created.Equal(time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)) {
		t.Errorf("backups after three uploads = %+v, %v; want only the good one", bs, err)
	}
}

func TestPruneKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"db-a.sql.gz", "db-b.sql.gz", "db-c.sql.gz", "db-d.sql.gz"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
		mt := time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC)
		os.Chtimes(filepath.Join(dir, name), mt, mt)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600)
	if err := prune(dir, 2); err != nil {
		t.Fatal(err)
	}
	bs, _ := ListBackups(dir)
	var names []string
	for _, b := range bs {
		names = append(names, b.File)
	}
	if diff := cmp.Diff([]string{"db-c.sql.gz", "db-d.sql.gz"}, names); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Error("prune removed a file that is not a backup")
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
