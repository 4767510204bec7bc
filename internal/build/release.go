package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Options says what to build and where.
type Options struct {
	Config *config.Config
	Repo   string // the app's repository (where hoist.yml is)
	Ref    string // default HEAD
	// WorkDir holds scratch checkouts and packed releases.
	WorkDir string
	Log     io.Writer
	Now     func() time.Time
	// Dial reaches the remote builder's build host.
	Dial func(ctx context.Context, host string) (transport.Conn, error)
	// Rebuild builds even when a release of the same source exists.
	Rebuild bool
	// Verbose shows the build's own output as it comes; otherwise only
	// its last lines are shown, and only if it fails.
	Verbose bool
}

// Release checks out the commit, builds it, and packs the release; or
// returns the release already packed from the same source, when nothing
// the build sees has changed since.
func Release(ctx context.Context, o Options) (*Artifact, error) {
	cfg := o.Config
	ref := o.Ref
	if ref == "" {
		ref = "HEAD"
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	scope, err := Locate(ctx, o.Repo, cfg.Build.Include)
	if err != nil {
		return nil, err
	}
	commit, err := Resolve(ctx, scope.Top, ref)
	if err != nil {
		return nil, err
	}
	if ref == "HEAD" {
		warnDirty(ctx, o.Log, scope, o.Repo)
	}
	builder, err := New(cfg.Build, Deps{CacheDir: o.WorkDir, Dial: o.Dial})
	if err != nil {
		return nil, err
	}
	// The same sources built the same way give the same release: a build
	// of a commit that changed nothing the build sees reuses the packed
	// one.
	key, err := artifactKey(ctx, cfg, builder, scope, commit)
	if err != nil {
		return nil, err
	}
	// One build per key at a time: a second deploy of the same commit
	// waits for the first and takes its release, so that one release id
	// never names two different tarballs.
	unlock, err := lockKey(ctx, o.WorkDir, cfg.App, key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !o.Rebuild {
		if art := findArtifact(o.WorkDir, cfg.App, key); art != nil {
			art.Reused = true
			fmt.Fprintf(o.Log, "reusing release %s, built from commit %s: %s (--rebuild builds again)\n",
				art.Manifest.ID, short(art.Manifest.Commit), reuseReason(art.Manifest.Commit, commit, scope))
			return art, nil
		}
	}
	id := release.NewID(now(), commit)
	builds := filepath.Join(o.WorkDir, "builds", cfg.App)
	if err := os.MkdirAll(builds, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	scratch, err := os.MkdirTemp(builds, id+"-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(scratch)
	fmt.Fprintf(o.Log, "building commit %s (%s) with the %s builder\n", short(commit), ref, builder.Name())
	src, err := Checkout(ctx, scope, commit, ref, filepath.Join(scratch, "src"))
	if err != nil {
		return nil, err
	}
	job := Job{App: cfg.App, Root: src.Dir, Dir: src.AppDir, Command: cfg.Build.Command, Env: cfg.Build.Env,
		Output: cfg.Build.Output, Target: cfg.Build.Target, Log: o.Log}
	if !o.Verbose {
		job.Out = NewTail(buildTailLines)
	}
	// A builder that keeps its caches itself (the remote one, on the
	// build host) gets none from here.
	reg, _ := registrationOf(cfg.Build) // New found it
	if len(cfg.Build.Caches) > 0 && !reg.BuildsCaches {
		key, err := CacheKey(job.Dir, builder.Identity())
		if err != nil {
			return nil, err
		}
		caches, err := OpenCaches(o.WorkDir, cfg.App, key, cfg.Build.Caches)
		if err != nil {
			return nil, err
		}
		if job.Mounts, err = caches.Mounts(); err != nil {
			return nil, err
		}
		if err := caches.Restore(job.Dir); err != nil {
			return nil, err
		}
		// Deferred: the caches go back after the release is packed, since
		// the output may live inside one.
		defer func() {
			if err := caches.Save(job.Dir); err != nil {
				fmt.Fprintf(o.Log, "warning: %v\n", err)
			}
		}()
	}
	if err := builder.Build(ctx, job); err != nil {
		return nil, err
	}
	out, err := CheckOutput(job)
	if err != nil {
		return nil, err
	}
	needs, err := release.Inspect(out)
	if err != nil {
		return nil, usererr.Wrap(err, "the release cannot run anywhere")
	}
	if err := checkBuiltFor(cfg.Build, reg, needs); err != nil {
		return nil, err
	}
	art, err := pack(cfg, out, id, src, needs, now(), o.WorkDir)
	if err != nil {
		return nil, err
	}
	recordArtifact(o.WorkDir, cfg.App, key, art)
	fmt.Fprintf(o.Log, "built release %s from commit %s (%s, sha256 %s)\n", id, short(commit), bytesize.String(art.Manifest.Size), art.Manifest.SHA256[:16])
	return art, nil
}

// buildTailLines is how much of a quiet build's output a failure shows.
const buildTailLines = 30

// artifactKey names what a build depends on: what the build sees of
// the commit, the build settings and the builder.
func artifactKey(ctx context.Context, cfg *config.Config, b Builder, scope Scope, commit string) (string, error) {
	src, err := scope.Key(ctx, commit)
	if err != nil {
		return "", err
	}
	settings, _ := json.Marshal(cfg.Build) // plain struct: cannot fail
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", cfg.App, src, b.Identity(), settings)
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// reuseReason says why a release built from commit built can serve
// commit want.
func reuseReason(built, want string, scope Scope) string {
	if built == want {
		return "the same commit"
	}
	return "nothing under " + scope.Describe() + " changed since"
}

// warnDirty names the uncommitted changes that are not shipped: those
// the build would see one by one, the others (another app's) in a count.
func warnDirty(ctx context.Context, log io.Writer, scope Scope, appDir string) {
	mine, others, err := scope.Dirty(ctx)
	if err != nil {
		return
	}
	if len(mine) > 0 {
		rel := make([]string, len(mine))
		for i, p := range mine {
			rel[i] = relTo(scope.Top, appDir, p)
		}
		fmt.Fprintf(log, "warning: %d uncommitted change(s) are not shipped: %s\n", len(mine), summarize(rel, 3))
	}
	if len(others) > 0 {
		fmt.Fprintf(log, "note: %d uncommitted change(s) elsewhere in the repository are outside this app's build\n", len(others))
	}
}

// relTo names p (relative to the repository top) as seen from appDir.
func relTo(top, appDir, p string) string {
	r, err := filepath.Rel(appDir, filepath.Join(top, filepath.FromSlash(p)))
	if err != nil {
		return p
	}
	return r
}

// lockKey takes the build lock of one source key; a build of it by
// another hoist on this machine is waited for (up to an hour: builds of
// large apps are slow, and the wait ends with ctx).
func lockKey(ctx context.Context, workDir, app, key string) (func(), error) {
	l, err := filelock.Acquire(ctx, filepath.Join(workDir, "builds", app, key+".lock"), time.Hour)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return l.Release, nil
}

func short(commit string) string { return commit[:min(12, len(commit))] }

// artifactPath names a packed release by id and checksum: two builds of
// one commit in the same second share an id, never a file.
func artifactPath(workDir string, m *release.Manifest) string {
	return filepath.Join(workDir, "releases", m.App, m.ID+"."+m.SHA256[:12]+".tar.zst")
}

func artifactIndex(workDir, app, key string) string {
	return filepath.Join(workDir, "releases", app, "by-source", key+".json")
}

// findArtifact returns the packed release recorded under key, if its
// payload is still there and intact in size, with its file index.
func findArtifact(workDir, app, key string) *Artifact {
	b, err := os.ReadFile(artifactIndex(workDir, app, key))
	if err != nil {
		return nil
	}
	m, err := release.ParseManifest(b)
	if err != nil || m.Index == "" {
		return nil // packed by a hoist that made no file index
	}
	art := &Artifact{Manifest: m, Path: artifactPath(workDir, m)}
	if fi, err := os.Stat(art.Path); err != nil || fi.Size() != m.Size {
		return nil
	}
	if _, err := art.Index(); err != nil {
		return nil
	}
	return art
}

func recordArtifact(workDir, app, key string, art *Artifact) {
	p := artifactIndex(workDir, app, key)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		// Best effort: without the index, the next build builds again.
		_ = atomicfile.Write(p, art.Manifest.Marshal(), 0o644)
	}
}

func pack(cfg *config.Config, dir, id string, src *Source, needs release.Needs, builtAt time.Time, workDir string) (*Artifact, error) {
	relDir := filepath.Join(workDir, "releases", cfg.App)
	if err := os.MkdirAll(relDir, 0o755); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	f, err := os.CreateTemp(relDir, id+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	defer os.Remove(f.Name())
	sum, size, err := release.Pack(dir, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	x, err := release.IndexDir(dir)
	if err != nil {
		return nil, err
	}
	if err := keepFiles(workDir, dir, x); err != nil {
		return nil, err
	}
	goos, goarch, _ := strings.Cut(cfg.Build.Target, "/")
	m := &release.Manifest{App: cfg.App, ID: id, Commit: src.Commit, Ref: src.Ref, SHA256: sum, Size: size,
		BuiltAt: builtAt.UTC().Truncate(time.Second), OS: goos, Arch: goarch, GLIBC: needs.GLIBC, Index: x.Sum()}
	art := &Artifact{Manifest: m, Path: artifactPath(workDir, m)}
	// The index first: an artifact is found by its payload, and a
	// payload is used only with its index.
	if err := atomicfile.Write(art.indexPath(), x.Marshal(), 0o644); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if err := os.Rename(f.Name(), art.Path); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return art, nil
}

func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}
