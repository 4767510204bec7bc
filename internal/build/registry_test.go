package build

import (
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/config"
)

// TestUnknownBuilderNamesTheRegistered: config refuses a builder no one
// registered at its line and column, naming every registered builder;
// each registered builder's checks run (the rootfs builder's here).
func TestUnknownBuilderNamesTheRegistered(t *testing.T) {
	const yml = "version: 1\napp: demo\nbuild:\n  command: make\n  output: dist\n  builder: %s\nrun:\n  command: ./app\n"
	_, err := config.Parse("hoist.yml", []byte(strings.Replace(yml, "%s", "nix", 1)))
	if err == nil || !strings.Contains(err.Error(), `hoist.yml:6:12: build.builder: unknown builder "nix": expected container, local, remote or rootfs`) {
		t.Errorf("err = %v", err)
	}
	if got := Names(); strings.Join(got, " ") != "container local remote rootfs" {
		t.Errorf("registered builders %v", got)
	}
	_, err = config.Parse("hoist.yml", []byte(strings.Replace(yml, "%s", "rootfs", 1)))
	if err == nil || !strings.Contains(err.Error(), "build.distro: missing") {
		t.Errorf("rootfs without distro: %v", err)
	}
	for _, name := range Names() {
		r, _ := Lookup(name)
		if r.New == nil {
			t.Errorf("builder %s registered without New", name)
		}
	}
}

// TestRegisteredBuildersAreWhole holds every registered builder to the
// fields of Registration that release.go and target.go read in place
// of its name: how it is made, its hint for a release built for the
// wrong system, and where its caches are (only the remote builder keeps
// them on its build host).
func TestRegisteredBuildersAreWhole(t *testing.T) {
	for _, name := range Names() {
		r, _ := Lookup(name)
		if r.New == nil || r.WrongOS == nil {
			t.Errorf("builder %s leaves a field of its Registration unset: %+v", name, r)
			continue
		}
		if hint := r.WrongOS("linux", "linux/amd64"); !strings.Contains(hint, "linux") {
			t.Errorf("builder %s's hint names no system: %q", name, hint)
		}
		if r.BuildsCaches != (name == "remote") {
			t.Errorf("builder %s keeps its caches itself: %v", name, r.BuildsCaches)
		}
	}
	if r, ok := registrationOf(config.Build{}); !ok || r.Name != "local" {
		t.Errorf("no builder named: %q", r.Name)
	}
	if hint := localWrongOS("linux", "linux/amd64"); !strings.Contains(hint, "GOOS=linux") {
		t.Errorf("the local builder's hint: %q", hint)
	}
}
