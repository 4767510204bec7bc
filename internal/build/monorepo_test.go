package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/release"
)

// monorepo is a git repository with two apps and a shared library.
type monorepo struct {
	t   *testing.T
	top string
}

func newMonorepo(t *testing.T) *monorepo {
	m := &monorepo{t: t, top: gittest.Repo(t, map[string]string{
		"README":             "top\n",
		"apps/a/main.txt":    "a1\n",
		"apps/b/main.txt":    "b1\n",
		"apps/NOTES":         "beside the apps\n",
		"shared/lib/lib.txt": "lib1\n",
	})}
	return m
}

func (m *monorepo) git(args ...string) string {
	m.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@x.invalid", "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Dir = m.top
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// commit writes files and commits them.
func (m *monorepo) commit(files map[string]string) {
	m.t.Helper()
	for name, content := range files {
		p := filepath.Join(m.top, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			m.t.Fatal(err)
		}
	}
	m.git("add", "-A")
	m.git("commit", "-qm", "change")
}

// appConfig is app a's hoist.yml: its release lists what the build saw
// of the checkout and copies main.txt (and the library, if included).
func appConfig(t *testing.T, include ...string) *config.Config {
	t.Helper()
	y := "version: 1\napp: a\nbuild:\n  command: mkdir -p out && cp main.txt out/ && (cd ../.. && find . -path ./.git -prune -o -path ./apps/a/out -prune -o -type f -print | sort) > out/seen\n  output: out\n"
	if len(include) > 0 {
		y += "  include: [" + strings.Join(include, ", ") + "]\n"
	}
	c, err := config.Parse("hoist.yml", []byte(y+"run:\n  command: ./app\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type built struct {
	art *Artifact
	log string
}

func (m *monorepo) build(cfg *config.Config, work string) built {
	m.t.Helper()
	var log bytes.Buffer
	art, err := Release(context.Background(), Options{Config: cfg, Repo: filepath.Join(m.top, "apps", "a"), WorkDir: work, Log: &log})
	if err != nil {
		m.t.Fatalf("build: %v\n%s", err, log.String())
	}
	return built{art, log.String()}
}

func releaseFile(t *testing.T, art *Artifact, name string) string {
	t.Helper()
	f, err := os.Open(art.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dest := filepath.Join(t.TempDir(), "r")
	if err := release.Unpack(f, dest); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dest, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuildAppInSubdirectory builds an app whose hoist.yml is two levels
// down: the checkout is of the whole repository's commit, sparse, with
// the app's directory, the included ones and the files above them.
func TestBuildAppInSubdirectory(t *testing.T) {
	m := newMonorepo(t)
	b := m.build(appConfig(t, "../../shared/lib"), t.TempDir())
	if got := releaseFile(t, b.art, "main.txt"); got != "a1\n" {
		t.Errorf("main.txt = %q", got)
	}
	want := "./README\n./apps/NOTES\n./apps/a/main.txt\n./shared/lib/lib.txt\n"
	if got := releaseFile(t, b.art, "seen"); got != want {
		t.Errorf("the build saw\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(b.log, "built release "+b.art.Manifest.ID) || b.art.Reused {
		t.Errorf("log:\n%s", b.log)
	}
}

// TestReuseFollowsWhatTheBuildSees reuses a release across commits that
// change only what the build does not see, and says so once; a change to
// anything it sees builds again.
func TestReuseFollowsWhatTheBuildSees(t *testing.T) {
	m := newMonorepo(t)
	work := t.TempDir()
	cfg := appConfig(t, "../../shared/lib")
	first := m.build(cfg, work)

	steps := []struct {
		name    string
		files   map[string]string
		rebuild bool
	}{
		{"another app", map[string]string{"apps/b/main.txt": "b2\n"}, false},
		{"a new top-level directory", map[string]string{"docs/x.md": "x\n"}, false},
		{"the app", map[string]string{"apps/a/main.txt": "a2\n"}, true},
		{"the included library", map[string]string{"shared/lib/lib.txt": "lib2\n"}, true},
		{"a file at the top", map[string]string{"README": "top2\n"}, true},
		{"a file beside the app's directory", map[string]string{"apps/NOTES": "n2\n"}, true},
		{"a directory beside the included one", map[string]string{"shared/other/o.txt": "o\n"}, false},
	}
	prev := first
	for _, st := range steps {
		m.commit(st.files)
		b := m.build(cfg, work)
		if st.rebuild {
			if b.art.Reused || b.art.Manifest.ID == prev.art.Manifest.ID || !strings.Contains(b.log, "built release") {
				t.Errorf("%s: want a new build; log:\n%s", st.name, b.log)
			}
		} else {
			want := "reusing release " + prev.art.Manifest.ID + ", built from commit " + prev.art.Manifest.Commit[:12] +
				": nothing under apps/a and shared/lib changed since"
			if !b.art.Reused || b.art.Manifest.ID != prev.art.Manifest.ID || !strings.Contains(b.log, want) {
				t.Errorf("%s: want %q; log:\n%s", st.name, want, b.log)
			}
			if strings.Contains(b.log, "built release") {
				t.Errorf("%s: a reused release is said to be built:\n%s", st.name, b.log)
			}
		}
		prev = b
	}
}

// TestDirtyReportedForTheAppOnly names uncommitted changes the build
// would see, and only counts the others.
func TestDirtyReportedForTheAppOnly(t *testing.T) {
	m := newMonorepo(t)
	os.WriteFile(filepath.Join(m.top, "apps/a/main.txt"), []byte("dirty\n"), 0o644)
	os.WriteFile(filepath.Join(m.top, "apps/b/main.txt"), []byte("dirty\n"), 0o644)
	os.MkdirAll(filepath.Join(m.top, "apps/c"), 0o755)
	os.WriteFile(filepath.Join(m.top, "apps/c/new.txt"), []byte("new\n"), 0o644)
	b := m.build(appConfig(t), t.TempDir())
	if !strings.Contains(b.log, "warning: 1 uncommitted change(s) are not shipped: main.txt\n") {
		t.Errorf("no warning naming the app's change:\n%s", b.log)
	}
	if !strings.Contains(b.log, "note: 2 uncommitted change(s) elsewhere in the repository are outside this app's build") {
		t.Errorf("the other apps' changes are not counted:\n%s", b.log)
	}
	if got := releaseFile(t, b.art, "main.txt"); got != "a1\n" {
		t.Errorf("shipped %q, want the committed file", got)
	}
}

// TestBuildWithSubmodule checks out a submodule inside the app's scope,
// from the working copy's own clone of it.
func TestBuildWithSubmodule(t *testing.T) {
	lib := gittest.Repo(t, map[string]string{"lib.txt": "from the submodule\n"})
	m := newMonorepo(t)
	m.git("submodule", "add", "-q", lib, "apps/a/vendor/lib")
	m.git("commit", "-qm", "submodule")
	// The submodule's origin goes away: the build must use the working
	// copy's clone of it.
	if err := os.RemoveAll(lib); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("hoist.yml", []byte("version: 1\napp: a\nbuild:\n  command: mkdir -p out && cp vendor/lib/lib.txt out/\n  output: out\nrun:\n  command: ./app\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := m.build(cfg, t.TempDir())
	if got := releaseFile(t, b.art, "lib.txt"); got != "from the submodule\n" {
		t.Errorf("lib.txt = %q", got)
	}
}

// TestConcurrentBuildsOfOneCommit runs two builds of one commit at once:
// one builds, the other waits and reuses its release, so one release id
// never names two tarballs (the build writes random bytes, so two builds
// would differ).
func TestConcurrentBuildsOfOneCommit(t *testing.T) {
	m := newMonorepo(t)
	cfg, err := config.Parse("hoist.yml", []byte("version: 1\napp: a\nbuild:\n  command: mkdir -p out && head -c 16 /dev/urandom > out/random\n  output: out\nrun:\n  command: ./app\n"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var wg sync.WaitGroup
	results := make([]*Artifact, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = Release(context.Background(), Options{Config: cfg, Repo: filepath.Join(m.top, "apps", "a"), WorkDir: work, Log: &bytes.Buffer{}})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if results[0].Manifest.SHA256 != results[1].Manifest.SHA256 || results[0].Reused == results[1].Reused {
		t.Errorf("two builds of one commit: %s (reused %v) and %s (reused %v)",
			results[0].Manifest.SHA256, results[0].Reused, results[1].Manifest.SHA256, results[1].Reused)
	}
}
