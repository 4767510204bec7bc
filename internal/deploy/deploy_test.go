package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/usererr"
)

func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", "one"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func testConfig(t *testing.T, command, output string) *config.Config {
	t.Helper()
	c, err := config.Parse("hoist.yml", []byte("version: 1\napp: demo\nbuild:\n  command: "+command+"\n  output: "+output+"\nrun:\n  command: ./app\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBuildShipsTheCommitNotTheWorkingCopy builds from a clean checkout:
// an uncommitted change is named on stderr and is not in the release,
// and the working copy is left as it was.
func TestBuildShipsTheCommitNotTheWorkingCopy(t *testing.T) {
	repo := gitRepo(t, map[string]string{"msg.txt": "committed\n"})
	if err := os.WriteFile(filepath.Join(repo, "msg.txt"), []byte("uncommitted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cfg := testConfig(t, "mkdir -p out && cp msg.txt out/", "out")
	art, err := Build(context.Background(), BuildOptions{Config: cfg, Repo: repo, WorkDir: t.TempDir(), Log: &log,
		Now: func() time.Time { return time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "1 uncommitted change(s) are not shipped: msg.txt") {
		t.Errorf("no warning about the dirty tree:\n%s", log.String())
	}
	if !strings.HasPrefix(art.Manifest.ID, "20261125T010000Z-") || !release.ValidID(art.Manifest.ID) {
		t.Errorf("release id %q", art.Manifest.ID)
	}
	f, err := os.Open(art.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dest := filepath.Join(t.TempDir(), "r")
	if err := release.Unpack(f, dest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "msg.txt")); string(b) != "committed\n" {
		t.Errorf("release holds %q, want the committed file", b)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "msg.txt")); string(b) != "uncommitted\n" {
		t.Errorf("the working copy was changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(repo, "out")); !os.IsNotExist(err) {
		t.Error("the build wrote into the working copy")
	}
}

func TestBuildRefusals(t *testing.T) {
	repo := gitRepo(t, map[string]string{"a": "a"})
	tests := map[string]struct {
		command, output, ref, want string
	}{
		"missing output": {"true", "dist", "", "the build left no dist directory"},
		"empty output":   {"mkdir dist", "dist", "", "the build left dist empty"},
		"failing build":  {"exit 3", "dist", "", "build command failed (exit 3)"},
		"unknown ref":    {"true", "dist", "nope", `"nope" does not name a commit`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Build(context.Background(), BuildOptions{Config: testConfig(t, tt.command, tt.output), Repo: repo, Ref: tt.ref, WorkDir: t.TempDir(), Log: &bytes.Buffer{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !usererr.Is(err) {
				t.Errorf("%T is not a user error", err)
			}
		})
	}
	_, err := Build(context.Background(), BuildOptions{Config: testConfig(t, "true", "d"), Repo: t.TempDir(), WorkDir: t.TempDir(), Log: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Errorf("outside git: %v", err)
	}
}
