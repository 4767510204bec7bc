package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/ptytest"
)

// run drives the CLI in-process, as main does.
func run(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if dir != "" {
		old, _ := os.Getwd()
		if err := os.Chdir(dir); err != nil {
			t.Fatal(err)
		}
		defer os.Chdir(old)
	}
	var out, errb bytes.Buffer
	err = Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func TestInitWritesAConfigThatLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/shop\n"), 0o644)
	if _, stderr, err := run(t, dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	c, err := config.Load(filepath.Join(dir, "hoist.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.App != "shop" || c.Run.Command != "./shop" {
		t.Errorf("init wrote %+v", c)
	}
	_, stderr, err := run(t, dir, "init")
	if err == nil || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "--force") {
		t.Errorf("second init: err %v, stderr %q", err, stderr)
	}
	if _, _, err := run(t, dir, "init", "--force"); err != nil {
		t.Errorf("init --force: %v", err)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte("version: 1\napp: x\nbuild:\n  command: make\n  output: d\nrun:\n  command: ./x\n"), 0o644)
	tests := map[string]struct {
		args     []string
		code     int
		inStderr string
	}{
		"unknown flag":         {[]string{"deploy", "--nope"}, 2, "unknown flag: --nope"},
		"bad rollback id":      {[]string{"rollback", "last-tuesday"}, 2, "is not a release id"},
		"no hosts":             {[]string{"status"}, 1, "hint: list them under hosts:"},
		"missing config":       {[]string{"-c", "nope.yml", "status"}, 1, "hint: run `hoist init`"},
		"bad lab size":         {[]string{"lab", "up", "--hosts", "0"}, 2, "--hosts must be between 1 and 50"},
		"negative log lines":   {[]string{"logs", "-n", "-1"}, 2, "-n must be 0 or more"},
		"unknown host verb":    {[]string{"host", "nope"}, 2, `unknown verb "nope"`},
		"exec -t, no terminal": {[]string{"exec", "-t", "--", "sh"}, 2, "-t needs a terminal on stdin"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			wantFailure(t, dir, tt.args, tt.code, tt.inStderr)
		})
	}
}

// wantFailure runs hoist and checks its exit code, that stderr says
// inStderr, and that stdout stays empty.
func wantFailure(t *testing.T, dir string, args []string, code int, inStderr string) {
	t.Helper()
	stdout, stderr, err := run(t, dir, args...)
	if got := ExitCode(err); got != code {
		t.Errorf("exit code %d, want %d (err %v)", got, code, err)
	}
	if !strings.Contains(stderr, inStderr) {
		t.Errorf("stderr %q does not contain %q", stderr, inStderr)
	}
	if stdout != "" {
		t.Errorf("stdout should stay empty on error, got %q", stdout)
	}
}

func TestExitCodeMapping(t *testing.T) {
	tests := map[string]struct {
		err  error
		want int
	}{
		"nil":      {nil, 0},
		"plain":    {errors.New("x"), 1},
		"exit":     {&ExitError{Code: 7}, 7},
		"usage":    {usage("bad"), 2},
		"canceled": {context.Canceled, 130},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

// A host named twice with --host is worked on once: two goroutines on
// one host would run two activations there.
func TestHostFlagsDeduplicated(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hoist.yml")
	os.WriteFile(cfg, []byte("version: 1\napp: x\nhosts: [a]\nbuild:\n  command: make\n  output: d\nrun:\n  command: ./x\n"), 0o644)
	var errb bytes.Buffer
	a, err := loadApp(&globalOptions{configPath: cfg}, &streams{out: &bytes.Buffer{}, err: &errb}, []string{"b", "c", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "c"}, a.Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

// TestDeployNamesUnreachableHostsBeforeBuilding: with no host reachable,
// deploy fails naming them, and never starts the build.
func TestDeployNamesUnreachableHostsBeforeBuilding(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "built")
	// A port on loopback where nothing listens: refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir := gittest.Repo(t, map[string]string{"hoist.yml": "version: 1\napp: x\nbuild:\n  command: touch " + marker + " && mkdir -p d && touch d/x\n  output: d\nrun:\n  command: ./x\n"})
	t.Setenv("HOIST_HOME", t.TempDir())
	t.Setenv("HOIST_CACHE", t.TempDir())
	_, stderr, err := run(t, dir, "deploy", "--host", "ssh://"+dead)
	if err == nil {
		t.Fatal("deploy to an unreachable host succeeded")
	}
	if !strings.Contains(stderr, dead+" cannot be reached") || !strings.Contains(stderr, "deploy failed on 1 of 1 host(s)") {
		t.Errorf("stderr does not name the host:\n%s", stderr)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the build ran although no host could be reached")
	}
}

// exec -t wires this terminal to one host's: with two, it says to name one.
func TestExecTerminalOnOneHost(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte("version: 1\napp: x\nhosts: [a, b]\nbuild:\n  command: make\n  output: d\nrun:\n  command: ./x\n"), 0o644)
	ptm, pts, err := ptytest.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	var out, errb bytes.Buffer
	err = Run(context.Background(), []string{"-c", filepath.Join(dir, "hoist.yml"), "exec", "-t", "--", "sh"}, pts, &out, &errb)
	if ExitCode(err) != 2 || !strings.Contains(errb.String(), "-t runs CMD on one host; name it with --host") {
		t.Errorf("exit code %d, stderr %q; want a usage error naming --host", ExitCode(err), errb.String())
	}
}

// A host never seen before is asked about on the terminal hoist runs
// on: the question on stderr, the answer typed; anything but yes or no
// is asked again.
func TestHostKeyQuestionOnTerminal(t *testing.T) {
	ptm, pts, err := ptytest.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	seen := make(chan string, 64)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			if n > 0 {
				seen <- string(b[:n])
			}
			if err != nil {
				close(seen)
				return
			}
		}
	}()
	var shown strings.Builder
	waitFor := func(s string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for !strings.Contains(shown.String(), s) {
			select {
			case b, ok := <-seen:
				if !ok {
					t.Fatalf("the terminal closed before %q; it shows %q", s, shown.String())
				}
				shown.WriteString(b)
			case <-timeout:
				t.Fatalf("the terminal shows %q, not %q", shown.String(), s)
			}
		}
	}
	ask := askHostKeys(&streams{in: pts, out: io.Discard, err: pts}, &sync.Mutex{})
	if ask == nil {
		t.Fatal("no question on a terminal")
	}
	for _, tt := range []struct {
		typed []string
		want  bool
	}{{[]string{"yes"}, true}, {[]string{"maybe", "no"}, false}, {[]string{"YES"}, true}} {
		answer := make(chan bool, 1)
		go func() {
			yes, err := ask("SHA256:abc (yes/no)? ")
			if err != nil {
				t.Error(err)
			}
			answer <- yes
		}()
		shown.Reset()
		waitFor("SHA256:abc (yes/no)? ")
		for i, typed := range tt.typed {
			if i > 0 {
				waitFor("Please type 'yes' or 'no': ")
			}
			ptm.Write([]byte(typed + "\n"))
		}
		select {
		case got := <-answer:
			if got != tt.want {
				t.Errorf("typed %q: answer %v, want %v", tt.typed, got, tt.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("typed %q: no answer", tt.typed)
		}
	}
	// Without a terminal on both sides, nobody is asked.
	if askHostKeys(&streams{in: strings.NewReader("yes\n"), out: io.Discard, err: pts}, &sync.Mutex{}) != nil {
		t.Error("asked with stdin not a terminal")
	}
	if askHostKeys(&streams{in: pts, out: io.Discard, err: &bytes.Buffer{}}, &sync.Mutex{}) != nil {
		t.Error("asked with stderr not a terminal")
	}
}
