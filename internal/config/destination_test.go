package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const base = valid + `proxy:
  hosts: [shop.example.com]
accessories:
  db:
    service: postgresql
    backup: {keep: 14}
`

func TestDestinationLaysOverBase(t *testing.T) {
	over := `hosts: [10.0.9.1]
proxy:
  hosts: [staging.shop.example.com]
accessories:
  db:
    backup: {schedule: "off"}
  cache:
    service: redis
infra:
  provider: lab
`
	c, err := ParseDestination("hoist.yml", []byte(base), "hoist.staging.yml", []byte(over), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if c.Destination != "staging" || c.App != "hello" || c.Run.Command != "./hello" {
		t.Errorf("destination %q, app %q, run %q: the base's values are lost", c.Destination, c.App, c.Run.Command)
	}
	if diff := cmp.Diff([]string{"10.0.9.1"}, c.Hosts); diff != "" {
		t.Errorf("hosts: a list replaces the base's (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"staging.shop.example.com"}, c.Proxy.Hosts); diff != "" {
		t.Errorf("proxy.hosts (-want +got):\n%s", diff)
	}
	// Mappings merge key by key: db keeps its service and keep, takes the schedule.
	if got := c.Accessories["db"]; got.Service != "postgresql" || got.Backup != (AccessoryBackup{Schedule: "off", Keep: 14}) {
		t.Errorf("db = %+v", got)
	}
	if c.Accessories["cache"].Service != "redis" {
		t.Errorf("cache = %+v", c.Accessories["cache"])
	}
	if c.Infra.Env != "staging" {
		t.Errorf("infra.env = %q, want the destination's name", c.Infra.Env)
	}
}

func TestDestinationErrorsNameTheirFile(t *testing.T) {
	tests := map[string]struct {
		over string
		want string
	}{
		"unknown key in the overlay": {"proxy:\n  hostz: [a]\n", `hoist.staging.yml:2:3: unknown field "hostz"`},
		"wrong type in the overlay":  {"keep_releases: many\n", "hoist.staging.yml:1:16: "},
		"bad value in the overlay":   {"accessories:\n  db:\n    listen: 1.1.1.1\n", "hoist.staging.yml:3:13: accessories.db.listen: 1.1.1.1 is not a private address"},
		"overlay's change refused":   {"accessories:\n  db:\n    service: redis\n", "hoist.staging.yml:2:3: accessories.db: database and backup are for postgresql"},
		"empty overlay":              {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseDestination("hoist.yml", []byte(base), "hoist.staging.yml", []byte(tt.over), "staging")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("an empty destination file: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant prefix %q", err, tt.want)
			}
		})
	}
}

func TestDestinationBaseErrorNamesBase(t *testing.T) {
	bad := strings.Replace(base, "    backup: {keep: 14}\n", "    listen: 8.8.8.8\n", 1)
	_, err := ParseDestination("hoist.yml", []byte(bad), "hoist.staging.yml", []byte("hosts: [10.0.0.9]\n"), "staging")
	if err == nil || !strings.HasPrefix(err.Error(), "hoist.yml:14:13: accessories.db.listen: 8.8.8.8") {
		t.Errorf("error = %v, want it at hoist.yml:14:13", err)
	}
}

func TestLoadDestination(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hoist.yml")
	os.WriteFile(file, []byte(base), 0o644)
	os.WriteFile(filepath.Join(dir, "hoist.production.yml"), []byte("hosts: [10.0.0.2]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "hoist.staging.yml"), []byte("hosts: [10.0.0.3]\n"), 0o644)
	c, err := LoadDestination(file, "production")
	if err != nil || c.Hosts[0] != "10.0.0.2" {
		t.Fatalf("production: %v, %v", c, err)
	}
	if c, err := LoadDestination(file, ""); err != nil || c.Hosts[0] != "10.0.0.1" || c.Destination != "" {
		t.Errorf("no destination: %v, %v", c, err)
	}
	_, err = LoadDestination(file, "qa")
	if err == nil || !strings.Contains(err.Error(), "there is no destination qa") || !strings.Contains(err.Error(), "hoist.qa.yml does not exist") {
		t.Errorf("a destination that does not exist: %v", err)
	}
	if _, err := LoadDestination(file, "Prod/../x"); err == nil || !strings.Contains(err.Error(), "is not a destination name") {
		t.Errorf("a bad name: %v", err)
	}
	if got := Destinations(file); !cmp.Equal(got, []string{"production", "staging"}) {
		t.Errorf("Destinations = %v", got)
	}
}
