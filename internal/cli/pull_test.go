package cli

import (
	"strings"
	"testing"
)

func TestRestrictedMode(t *testing.T) {
	tests := map[string]bool{
		"psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": true,
		"psql (PostgreSQL) 15.13":                          false,
		"psql (PostgreSQL) 17.6":                           true,
		"psql (PostgreSQL) 16.9 (Homebrew)":                false,
		"psql (PostgreSQL) 18.0":                           true,
		"psql (PostgreSQL) 12.22":                          false,
	}
	for version, want := range tests {
		if _, _, got := restrictedMode(version); got != want {
			t.Errorf("restrictedMode(%q) = %v, want %v", version, got, want)
		}
	}
	if major, _, _ := restrictedMode("no version"); major != 0 {
		t.Errorf("a version without numbers read as %d", major)
	}
}

// The password of --into goes to psql in its environment; what is shown
// and given on psql's command line has none.
func TestLocalDBURL(t *testing.T) {
	d, err := openLocalDB("postgres://ada:s3cret@localhost:5433/shop_dev?sslmode=disable")
	if err != nil {
		t.Skipf("no usable psql here: %v", err)
	}
	if d.name != "shop_dev" || d.password != "s3cret" || strings.Contains(d.display(), "s3cret") {
		t.Errorf("localDB = %+v, shown as %s", d, d.display())
	}
	if got := d.conn("postgres"); got != "postgres://ada@localhost:5433/postgres?sslmode=disable" {
		t.Errorf("conn = %s", got)
	}
}

func TestPullRefusals(t *testing.T) {
	dir := dayTwoRepo(t)
	tests := map[string]struct {
		args []string
		want string
	}{
		"no target":          {[]string{"accessory", "pull", "db"}, "pull takes one of --to FILE and --into"},
		"both targets":       {[]string{"accessory", "pull", "db", "--to", "x", "--into", "postgres:///x"}, "pull takes one of"},
		"not a postgres URL": {[]string{"accessory", "pull", "db", "--into", "mysql://localhost/x"}, `--into "mysql://localhost/x" is not a postgres:// URL`},
		"no database":        {[]string{"accessory", "pull", "db", "--into", "postgres://localhost"}, "names no database"},
		"no such accessory":  {[]string{"accessory", "pull", "cache", "--to", "x"}, "hoist.yml has no accessory cache"},
		"psql of nothing":    {[]string{"accessory", "psql", "cache"}, "hoist.yml has no accessory cache"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := run(t, dir, tt.args...)
			if err == nil || !strings.Contains(stderr, tt.want) {
				t.Errorf("hoist %v: %v\n%s\nwant %q", tt.args, err, stderr, tt.want)
			}
		})
	}
}
