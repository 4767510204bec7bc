package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
)

const dayTwoConfig = `version: 1
app: shop
hosts: [10.0.0.1, 10.0.0.2]
build:
  command: make
  output: dist
run:
  command: ./shop
accessories:
  db:
    service: postgresql
    host: 10.0.0.9
    listen: 10.0.0.9
`

func dayTwoRepo(t *testing.T) string {
	t.Helper()
	t.Setenv("HOIST_HOME", t.TempDir())
	t.Setenv("HOIST_SECRETS_KEY", "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(dayTwoConfig), 0o644)
	os.WriteFile(filepath.Join(dir, "hoist.staging.yml"), []byte("hosts: [10.1.0.1]\n"), 0o644)
	return dir
}

// A destination's secrets are its own file, opened by its own key: one
// destination never reads another's.
func TestDestinationSecretsApart(t *testing.T) {
	dir := dayTwoRepo(t)
	if _, stderr, err := run(t, dir, "-d", "staging", "secrets", "set", "TOKEN", "s3"); err != nil {
		t.Fatalf("set: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "hoist.staging.secrets")); err != nil {
		t.Errorf("staging's secrets file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("HOIST_HOME"), "keys", "shop.staging.age")); err != nil {
		t.Errorf("staging's key: %v", err)
	}
	if out, _, err := run(t, dir, "-d", "staging", "secrets", "list", "--json"); err != nil || strings.TrimSpace(out) != "[\n  \"TOKEN\"\n]" {
		t.Errorf("staging's secrets: %q, %v", out, err)
	}
	if out, _, err := run(t, dir, "secrets", "list"); err != nil || out != "" {
		t.Errorf("the base's secrets: %q, %v; want none", out, err)
	}
}

func TestDayTwoRefusals(t *testing.T) {
	dir := dayTwoRepo(t)
	tests := map[string]struct {
		args     []string
		inStderr []string
	}{
		"destination that does not exist": {[]string{"-d", "qa", "status"}, []string{"there is no destination qa", "hoist.qa.yml does not exist", "the destinations here are staging"}},
		"bad destination name":            {[]string{"-d", "../x", "status"}, []string{"is not a destination name"}},
		"accessory that does not exist":   {[]string{"accessory", "restart", "cache"}, []string{"hoist.yml has no accessory cache; it has [db]"}},
		"accessory of staging":            {[]string{"-d", "staging", "accessory", "logs", "cache"}, []string{"destination staging has no accessory cache"}},
		"restore of nothing":              {[]string{"accessory", "restore", "db", "no/such.sql.gz"}, []string{"is neither a local file nor a backup's name"}},
		"negative audit lines":            {[]string{"audit", "-n", "-1"}, []string{"-n must be 0 or more"}},
		"maintenance without the proxy":   {[]string{"maintenance", "on", "--message", "x"}, []string{"maintenance mode is the edge proxy's, and hoist.yml puts no proxy in front of shop", "hint: list the app's names in proxy.hosts"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := run(t, dir, tt.args...)
			if err == nil {
				t.Fatalf("hoist %v succeeded", tt.args)
			}
			for _, want := range tt.inStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not say %q", stderr, want)
				}
			}
		})
	}
}

func TestReadErrorPages(t *testing.T) {
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "errors"), 0o755)
	os.WriteFile(filepath.Join(repo, "errors", "503.html"), []byte("<p>{{message}}</p>"), 0o644)
	pages, err := readErrorPages(repo, "errors")
	if err != nil || len(pages) != 1 || pages[503] != "<p>{{message}}</p>" {
		t.Errorf("pages = %v, %v", pages, err)
	}
	os.MkdirAll(filepath.Join(repo, "empty"), 0o755)
	if _, err := readErrorPages(repo, "empty"); err == nil || !strings.Contains(err.Error(), "holds none of 502.html, 503.html, 504.html") {
		t.Errorf("a directory without pages: %v", err)
	}
	os.WriteFile(filepath.Join(repo, "errors", "502.html"), []byte(strings.Repeat("x", 65<<10)), 0o644)
	if _, err := readErrorPages(repo, "errors"); err == nil || !strings.Contains(err.Error(), "at most 64 KiB") {
		t.Errorf("a page too big: %v", err)
	}
}

// An accessory on loopback serves its own host only: app hosts elsewhere
// are refused before setup touches anything.
func TestLoopbackAccessoryOnOneHost(t *testing.T) {
	cfg, err := config.Parse("hoist.yml", []byte(strings.Replace(dayTwoConfig, "    listen: 10.0.0.9\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{&deploy.App{Config: cfg, Hosts: cfg.Hosts, FirstHost: cfg.Hosts[0]}}
	if _, err := a.SetupAccessorySpecs(); err == nil || !strings.Contains(err.Error(), "accessory db listens on loopback on 10.0.0.9, where the app on 10.0.0.1 cannot reach it") {
		t.Errorf("SetupAccessorySpecs = %v", err)
	}
	cfg.Accessories["db"] = config.Accessory{Service: "postgresql", Listen: "loopback"}
	a.Hosts = a.Hosts[:1]
	byHost, err := a.SetupAccessorySpecs()
	if err != nil || len(byHost["10.0.0.1"]) != 1 || byHost["10.0.0.1"][0].Listen != "127.0.0.1" {
		t.Errorf("an accessory on the app's only host: %v, %v", byHost, err)
	}
	if got := a.SetupHosts(); strings.Join(got, " ") != "10.0.0.1" {
		t.Errorf("setup hosts = %v", got)
	}
}
