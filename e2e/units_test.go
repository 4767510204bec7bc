//go:build lab

package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/transport"
)

// TestExecStartRoundTrip has systemd on a lab host run command lines
// hoist rendered from hostile arguments, and checks the program got
// exactly the argv hoist meant: a command given as argv (as the proxy's
// unit has it) and an app's run command in its release unit template.
func TestExecStartRoundTrip(t *testing.T) {
	hosts := needLab(t)
	conn := dialLab(t, hosts[0])
	// The program's directory is hostile too: a space, a specifier.
	const dir = "/run/hoist e2e %h"
	const out = "/run/hoist-e2e-argv.out"
	dump := "#!/bin/sh\nfor a in \"$0\" \"$@\"; do printf '%s\\0' \"$a\"; done > " + out + "\n"
	var setup strings.Builder
	for _, d := range []string{dir, dir + "/releases/r1"} {
		q := transport.Quote(d)
		setup.WriteString("mkdir -p " + q + " && printf '%s' " + transport.Quote(dump) + " > " + q + "/dump && chmod 755 " + q + "/dump\n")
	}
	labRun(t, conn, setup.String())
	t.Cleanup(func() {
		labRun(t, conn, "rm -rf "+transport.Quote(dir)+" "+out+" /etc/systemd/system/hoist-e2e-argv*.service && systemctl daemon-reload")
	})

	t.Run("argv", func(t *testing.T) {
		argv := []string{dir + "/dump", "a b", `say "hi"`, "it's", `a\b`, `\`, "", ";", "a\nb\tc\x01", "%i%n%%",
			"$HOME", "${PATH}", "$$", "-v", "@x", `\;`, "x;", "héllo ☃"}
		line, err := systemd.ExecStart(argv)
		if err != nil {
			t.Fatal(err)
		}
		if got := runUnit(t, conn, "hoist-e2e-argv.service", "ExecStart="+line); !cmp.Equal(argv, got) {
			t.Errorf("ExecStart=%s ran (-want +got):\n%s", line, cmp.Diff(argv, got))
		}
	})

	t.Run("release command", func(t *testing.T) {
		unit, err := systemd.Template(systemd.App{Name: "e2e", User: "root", ReleaseDir: dir + "/releases/%i", Port: 1,
			Command: `./dump $HOME %i %% "q" 'q' a\b ; -x ${PATH}`})
		if err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(string(unit), "\n") {
			if strings.HasPrefix(l, "ExecStart=") {
				line = l
			}
		}
		want := []string{dir + "/releases/r1/dump", "$HOME", "%i", "%%", `"q"`, `'q'`, `a\b`, ";", "-x", "${PATH}"}
		if got := runUnit(t, conn, "hoist-e2e-argv@r1.service", line); !cmp.Equal(want, got) {
			t.Errorf("%s ran (-want +got):\n%s", line, cmp.Diff(want, got))
		}
	})
}

// runUnit installs a oneshot unit (or template, for an instance name)
// whose command is execStart, starts it, and returns the argv the dump
// script wrote.
func runUnit(t *testing.T, conn transport.Conn, name, execStart string) []string {
	t.Helper()
	file := name
	if at := strings.Index(name, "@"); at >= 0 {
		file = name[:at+1] + ".service"
	}
	content := "[Service]\nType=oneshot\n" + execStart + "\n"
	labRun(t, conn, "rm -f /run/hoist-e2e-argv.out && printf '%s' "+transport.Quote(content)+" > /etc/systemd/system/"+file+
		" && systemctl daemon-reload && systemctl start "+name)
	b := labRun(t, conn, "cat /run/hoist-e2e-argv.out")
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// labRun runs a shell command on the lab host and returns its stdout.
func labRun(t *testing.T, conn transport.Conn, cmd string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := conn.Run(ctx, cmd, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	return stdout.Bytes()
}
