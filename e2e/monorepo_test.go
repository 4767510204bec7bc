//go:build lab

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppInSubdirectory deploys examples/hello from a clone of hoist's
// own repository, as a new user would (cd examples/hello; hoist deploy),
// where it lives beside a second app (examples/hello-elixir): a commit
// that changes only the other app reuses the release and says so in one
// line; a commit that changes examples/hello deploys a new release.
func TestAppInSubdirectory(t *testing.T) {
	hosts := needLab(t)
	h := hosts[:1]
	top := filepath.Join(work, "monorepo")
	gitIn(t, "", "clone", "-q", "..", top)
	app := filepath.Join(top, "examples", "hello")
	// Its own name and port, beside the other tests' apps on the host.
	cfg := readFile(t, filepath.Join(app, "hoist.yml"))
	cfg = strings.Replace(cfg, "app: hello\n", "app: mono\n", 1)
	cfg = strings.Replace(cfg, "  port: 3000\n", "  port: 3600\n", 1)
	writeFile(t, filepath.Join(app, "hoist.yml"), cfg)
	gitIn(t, top, "commit", "-qam", "mono: own name and port")

	mustHoist(t, app, "setup", "--host", h[0])
	r1 := strings.TrimSpace(mustHoist(t, app, "deploy", "--host", h[0]))
	served := func(id string) {
		t.Helper()
		if got, want := (&appRepo{port: 3600}).served(h[0]), "hello from release "+id; got != want {
			t.Errorf("serves %q, want %q", got, want)
		}
	}
	served(r1)

	t.Run("a commit to the other app reuses the release", func(t *testing.T) {
		appendLine(t, filepath.Join(top, "examples", "hello-elixir", "mix.exs"), "# a change to the other app")
		gitIn(t, top, "commit", "-qam", "other app")
		commit := gitIn(t, top, "rev-parse", "HEAD")
		stdout, stderr, err := hoist(context.Background(), app, "deploy", "--host", h[0])
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if got := strings.TrimSpace(stdout); got != r1 {
			t.Errorf("deployed %s, want the reused %s", got, r1)
		}
		want := "reusing release " + r1 + ", built from commit "
		if !strings.Contains(stderr, want) || !strings.Contains(stderr, "nothing under examples/hello changed since") {
			t.Errorf("stderr does not say why it reuses %s:\n%s", r1, stderr)
		}
		if strings.Contains(stderr, "built release") || strings.Contains(stderr, commit[:12]) {
			t.Errorf("stderr names a build or the new commit %s for a reused release:\n%s", commit[:12], stderr)
		}
		served(r1)
	})
	t.Run("a commit to the app builds and deploys it", func(t *testing.T) {
		appendLine(t, filepath.Join(app, "main.go"), "// a change to the app")
		gitIn(t, top, "commit", "-qam", "the app")
		r3 := strings.TrimSpace(mustHoist(t, app, "deploy", "--host", h[0]))
		if r3 == r1 {
			t.Fatalf("a change to the app reused %s", r1)
		}
		served(r3)
	})
}

// TestAppWithSubmodule deploys an app whose build uses a file from a
// git submodule: the clean checkout has it, and so does the release.
func TestAppWithSubmodule(t *testing.T) {
	hosts := needLab(t)
	h := hosts[:1]
	lib := filepath.Join(work, "greeting-lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(lib, "greeting.txt"), "hello from a submodule\n")
	gitIn(t, lib, "init", "-q", "-b", "main")
	gitIn(t, lib, "add", "-A")
	gitIn(t, lib, "commit", "-qm", "greeting")

	a := newApp(t, "withsub", 3610, h, "")
	cfg := readFile(t, filepath.Join(a.dir, "hoist.yml"))
	cfg = strings.Replace(cfg, "go build -trimpath -o dist/hello .", "go build -trimpath -o dist/hello . && cp vendor/greeting/greeting.txt dist/", 1)
	a.write(t, "hoist.yml", cfg)
	gitIn(t, a.dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "vendor/greeting")
	a.commit(t, "greeting from a submodule")

	mustHoist(t, a.dir, "setup")
	mustHoist(t, a.dir, "deploy")
	if got := mustHoist(t, a.dir, "exec", "--", "cat", "greeting.txt"); !strings.Contains(got, "hello from a submodule") {
		t.Errorf("the release's greeting.txt: %q", got)
	}
}

// gitIn runs git in dir and returns its trimmed output.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendLine(t *testing.T, p, line string) {
	t.Helper()
	writeFile(t, p, readFile(t, p)+"\n"+line+"\n")
}
