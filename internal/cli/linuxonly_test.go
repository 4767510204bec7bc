//go:build !linux || nolinux

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/platform"
)

// TestLinuxOnlyVerbs: on a platform other than Linux, each verb that
// needs Linux fails with its one line, which names what to use instead,
// and nothing else. It is built where the stubs are: on macOS, and on
// Linux with -tags nolinux (scripts/test.sh runs it so), where the same
// stubs stand in for the Linux code.
func TestLinuxOnlyVerbs(t *testing.T) {
	if platform.Linux {
		t.Fatal("built with the Linux code: this test needs the stubs (-tags nolinux)")
	}
	app := "version: 1\napp: x\nhosts: [127.0.0.1:1]\nbuild:\n  command: make\n  output: d\nrun:\n  command: ./x\n"
	rootfs := gittest.Repo(t, map[string]string{"hoist.yml": "version: 1\napp: x\nhosts: [127.0.0.1:1]\nbuild:\n  builder: rootfs\n  distro: debian/bookworm\n  command: make\n  output: d\nrun:\n  command: ./x\n"})
	lab := t.TempDir()
	write(t, lab, "hoist.yml", app+"infra:\n  provider: lab\n")
	plain := t.TempDir()
	write(t, plain, "hoist.yml", app)
	t.Setenv("HOIST_HOME", filepath.Join(t.TempDir(), "home"))
	t.Setenv("HOIST_CACHE", filepath.Join(t.TempDir(), "cache"))

	tests := map[string]struct {
		dir  string
		args []string
		f    platform.Feature
	}{
		"lab up":            {plain, []string{"lab", "up"}, platform.Lab},
		"lab status":        {plain, []string{"lab", "status"}, platform.Lab},
		"lab down":          {plain, []string{"lab", "down"}, platform.Lab},
		"plan on the lab":   {lab, []string{"plan"}, platform.Lab},
		"rootfs build":      {rootfs, []string{"build"}, platform.RootfsBuilder},
		"rootfs deploy":     {rootfs, []string{"deploy"}, platform.RootfsBuilder},
		"proxy run":         {plain, []string{"proxy", "run"}, platform.Proxy},
		"host verb":         {plain, []string{"host", "status"}, platform.HostRole},
		"host verb, no arg": {plain, []string{"host"}, platform.HostRole},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := run(t, tt.dir, tt.args...)
			want := "error: " + platform.Message(tt.f, platform.Self()) + "\n"
			if err == nil || ExitCode(err) != 1 || stderr != want || stdout != "" {
				t.Errorf("hoist %v: exit %d (%v)\nstderr %q\nwant   %q\nstdout %q", tt.args, ExitCode(err), err, stderr, want, stdout)
			}
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
