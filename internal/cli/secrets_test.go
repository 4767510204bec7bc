package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/ptytest"
)

// secretOf is the value of name in dir's secrets.
func secretOf(t *testing.T, dir, name string) string {
	t.Helper()
	cfg, err := config.Load(filepath.Join(dir, "hoist.yml"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := secretsStore(cfg, dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	return vals[name]
}

// A value given on the command line is still taken, with a warning: it
// is in ps and the shell's history.
func TestSecretsSetWarnsOfAValueInArgv(t *testing.T) {
	dir := dayTwoRepo(t)
	_, stderr, err := run(t, dir, "secrets", "set", "TOKEN", "s3cr3t")
	if err != nil {
		t.Fatalf("set: %v\n%s", err, stderr)
	}
	if got := secretOf(t, dir, "TOKEN"); got != "s3cr3t" {
		t.Errorf("TOKEN = %q", got)
	}
	for _, want := range []string{"warning:", "in `ps`", "history", "hoist secrets set TOKEN"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("stderr shows the value:\n%s", stderr)
	}
}

// Piped in, the value is read from stdin, without a warning.
func TestSecretsSetFromStdin(t *testing.T) {
	dir := dayTwoRepo(t)
	old, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(old)
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"secrets", "set", "TOKEN"}, strings.NewReader("piped value\n"), &out, &errb); err != nil {
		t.Fatalf("set: %v\n%s", err, errb.String())
	}
	if got := secretOf(t, dir, "TOKEN"); got != "piped value" {
		t.Errorf("TOKEN = %q", got)
	}
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("a warning for a piped value:\n%s", errb.String())
	}
}

// On a terminal, hoist asks for the value and does not echo it; it took
// everything up to an end of file, shown as it was typed.
func TestSecretsSetAsksWithoutEcho(t *testing.T) {
	dir := dayTwoRepo(t)
	old, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(old)
	ptm, pts, err := ptytest.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	shown := make(chan string, 64)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			if n > 0 {
				shown <- string(b[:n])
			}
			if err != nil {
				close(shown)
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), []string{"secrets", "set", "TOKEN"}, pts, pts, pts) }()
	var screen strings.Builder
	timeout := time.After(10 * time.Second)
	for !strings.Contains(screen.String(), "TOKEN") {
		select {
		case s := <-shown:
			screen.WriteString(s)
		case <-timeout:
			t.Fatalf("no question on the terminal; it shows %q", screen.String())
		}
	}
	ptm.Write([]byte("typed s3cr3t\n"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("set: %v\n%s", err, screen.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("hoist still reads after the line was typed; the terminal shows %q", screen.String())
	}
	for drained := false; !drained; {
		select {
		case s := <-shown:
			screen.WriteString(s)
		default:
			drained = true
		}
	}
	if strings.Contains(screen.String(), "s3cr3t") {
		t.Errorf("the value was echoed: %q", screen.String())
	}
	if got := secretOf(t, dir, "TOKEN"); got != "typed s3cr3t" {
		t.Errorf("TOKEN = %q", got)
	}
}
