package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/usererr"
)

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
	repo := gittest.Repo(t, map[string]string{"msg.txt": "committed\n"})
	if err := os.WriteFile(filepath.Join(repo, "msg.txt"), []byte("uncommitted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cfg := testConfig(t, "mkdir -p out && cp msg.txt out/", "out")
	art, err := Release(context.Background(), Options{Config: cfg, Repo: repo, WorkDir: t.TempDir(), Log: &log,
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
	if got := releaseFile(t, art, "msg.txt"); got != "committed\n" {
		t.Errorf("release holds %q, want the committed file", got)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "msg.txt")); string(b) != "uncommitted\n" {
		t.Errorf("the working copy was changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(repo, "out")); !os.IsNotExist(err) {
		t.Error("the build wrote into the working copy")
	}
}

func TestBuildRefusals(t *testing.T) {
	repo := gittest.Repo(t, map[string]string{"a": "a"})
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
			_, err := Release(context.Background(), Options{Config: testConfig(t, tt.command, tt.output), Repo: repo, Ref: tt.ref, WorkDir: t.TempDir(), Log: &bytes.Buffer{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !usererr.Is(err) {
				t.Errorf("%T is not a user error", err)
			}
		})
	}
	_, err := Release(context.Background(), Options{Config: testConfig(t, "true", "d"), Repo: t.TempDir(), WorkDir: t.TempDir(), Log: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Errorf("outside git: %v", err)
	}
}

// TestBuildOutputQuietUnlessVerboseOrFailed keeps the build's own output
// off the terminal when it succeeds, shows its last lines when it fails,
// and all of it with Verbose.
func TestBuildOutputQuietUnlessVerboseOrFailed(t *testing.T) {
	repo := gittest.Repo(t, map[string]string{"a": "a"})
	noisy := "for i in $(seq 1 100); do echo build line $i; done; "
	tests := map[string]struct {
		command       string
		verbose       bool
		wantErr       bool
		inLog, notLog []string
		inHint        []string
		notHint       []string
	}{
		"quiet success":  {command: noisy + "mkdir -p out && touch out/x", notLog: []string{"build line 1\n", "build line 100"}},
		"verbose":        {command: noisy + "mkdir -p out && touch out/x", verbose: true, inLog: []string{"build line 1\n", "build line 100\n"}},
		"quiet failure":  {command: noisy + "echo it broke; exit 2", wantErr: true, notLog: []string{"build line 1\n"}, inHint: []string{"build line 100", "it broke", "--verbose"}, notHint: []string{"build line 1\n"}},
		"silent failure": {command: "exit 2", wantErr: true, inHint: []string{"it printed nothing"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			_, err := Release(context.Background(), Options{Config: testConfig(t, tt.command, "out"), Repo: repo, WorkDir: t.TempDir(), Log: &log, Verbose: tt.verbose})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v\n%s", err, log.String())
			}
			for _, s := range tt.inLog {
				if !strings.Contains(log.String(), s) {
					t.Errorf("log lacks %q:\n%s", s, log.String())
				}
			}
			for _, s := range tt.notLog {
				if strings.Contains(log.String(), s) {
					t.Errorf("log has %q:\n%s", s, log.String())
				}
			}
			hint := usererr.HintOf(err)
			for _, s := range tt.inHint {
				if !strings.Contains(hint, s) {
					t.Errorf("hint lacks %q:\n%s", s, hint)
				}
			}
			for _, s := range tt.notHint {
				if strings.Contains(hint, s) {
					t.Errorf("hint has %q:\n%s", s, hint)
				}
			}
		})
	}
}
