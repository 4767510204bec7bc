package systemd

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

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
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

var hello = App{
	Name: "hello", User: "hoist-hello", ReleaseDir: "/var/lib/hoist/hello/releases/%i", PortFile: "/var/lib/hoist/hello/ports/%i.env",
	StateDirectory: "hoist-hello", Command: "./hello --greeting 100%",
	Port: 3000, Env: map[string]string{"LOG_LEVEL": "info", "QUOTE": `say "hi" \ 50%`},
	EnvFile: "/var/lib/hoist/hello/shared/env", AccessoriesEnvFile: "/var/lib/hoist/hello/shared/accessories.env", HoistBin: "/usr/local/bin/hoist", BootRequest: `{"app":"hello","args":{}}`,
}

func TestTemplateGolden(t *testing.T) {
	b, err := Template(hello)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hello@.service", b)
}

func TestBootGolden(t *testing.T) {
	b, err := Boot(hello)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hello.service", b)
}

func TestExecStart(t *testing.T) {
	tests := map[string]struct{ cmd, want string }{
		"dot slash":   {"./hello", "/r/releases/%i/hello"},
		"subdir":      {"bin/app start", "/r/releases/%i/bin/app start"},
		"absolute":    {"/usr/bin/env FOO=1 app", "/usr/bin/env FOO=1 app"},
		"bare name":   {"node server.js", "node server.js"},
		"percent arg": {"./app 50%", "/r/releases/%i/app 50%%"},
		"empty":       {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ExecStart("/r/releases/%i", tt.cmd); got != tt.want {
				t.Errorf("ExecStart(%q) = %q, want %q", tt.cmd, got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	got := []string{TemplateName("a"), InstanceName("a", "R"), BootName("a"), InstancePattern("a")}
	want := []string{"hoist-a@.service", "hoist-a@R.service", "hoist-a.service", "hoist-a@*.service"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestJournalFolding(t *testing.T) {
	about := strings.Join([]string{
		"2026-11-25T01:00:00+0000 h systemd[1]: hoist-a@1.service: Main process exited, code=exited, status=1/FAILURE",
		"2026-11-25T01:00:01+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:02+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:03+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1.",
	}, "\n")
	tests := map[string]struct {
		own, about string
		max        int
		want       string
	}{
		"app first, repeats folded": {own: "2026-11-25T01:00:00+0000 h hello[9]: cannot open database", about: about, max: 6, want: strings.Join([]string{
			"2026-11-25T01:00:00+0000 h hello[9]: cannot open database",
			"-- systemd:",
			"2026-11-25T01:00:00+0000 h systemd[1]: hoist-a@1.service: Main process exited, code=exited, status=1/FAILURE",
			"2026-11-25T01:00:03+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument (3 times)",
			"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1.",
		}, "\n")},
		"systemd's last lines only": {own: "x", about: about, max: 1, want: "x\n-- systemd:\n" +
			"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1."},
		"app silent": {about: "2026-11-25T01:00:00+0000 h systemd[1]: started", max: 6,
			want: "(the release logged nothing)\n-- systemd:\n2026-11-25T01:00:00+0000 h systemd[1]: started"},
		"nothing": {max: 6, want: "(nothing in the journal)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := joinJournal(tt.own, foldRepeats(tt.about, tt.max)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
