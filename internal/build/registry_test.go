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
