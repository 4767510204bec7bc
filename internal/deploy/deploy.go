// Package deploy is the client side of a deploy and a rollback: it builds
// a release from a commit, packs it, and takes it to every host (lock,
// resumable upload, activation behind a health check, unlock).
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Artifact is a packed release on this machine.
type Artifact struct {
	Manifest *release.Manifest
	Path     string // the .tar.zst payload
}

// BuildOptions says what to build and where.
type BuildOptions struct {
	Config *config.Config
	Repo   string // the app's repository (where hoist.yml is)
	Ref    string // default HEAD
	// WorkDir holds scratch checkouts and packed releases.
	WorkDir string
	Log     io.Writer
	Now     func() time.Time
	// Dial reaches the remote builder's build host.
	Dial fleet.DialFunc
	// Rebuild builds even when a release of the same source exists.
	Rebuild bool
}

// Build checks out the commit, builds it, and packs the release.
func Build(ctx context.Context, o BuildOptions) (*Artifact, error) {
	cfg := o.Config
	ref := o.Ref
	if ref == "" {
		ref = "HEAD"
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	commit, err := build.Resolve(ctx, o.Repo, ref)
	if err != nil {
		return nil, err
	}
	if ref == "HEAD" {
		if dirty, err := build.Dirty(ctx, o.Repo); err == nil && len(dirty) > 0 {
			fmt.Fprintf(o.Log, "warning: %d uncommitted change(s) are not shipped (%s); hoist builds commit %s\n",
				len(dirty), summarize(dirty, 3), commit[:12])
		}
	}
	builder, err := build.New(cfg.Build, build.Deps{CacheDir: o.WorkDir, Dial: o.Dial})
	if err != nil {
		return nil, err
	}
	prefix, err := build.Prefix(ctx, o.Repo)
	if err != nil {
		return nil, err
	}
	// The same source tree built the same way gives the same release: a
	// second build of an unchanged app reuses the packed one.
	key, err := artifactKey(ctx, cfg, builder, o.Repo, commit, prefix)
	if err != nil {
		return nil, err
	}
	if !o.Rebuild {
		if art := findArtifact(o.WorkDir, cfg.App, key); art != nil {
			fmt.Fprintf(o.Log, "reusing release %s, built from the same source tree and build settings (--rebuild builds again)\n", art.Manifest.ID)
			return art, nil
		}
	}
	id := release.NewID(now(), commit)
	builds := filepath.Join(o.WorkDir, "builds", cfg.App)
	if err := os.MkdirAll(builds, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	// A scratch space of its own: two builds of one commit may run at once.
	scratch, err := os.MkdirTemp(builds, id+"-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(scratch)
	fmt.Fprintf(o.Log, "building %s (%s) with the %s builder\n", commit[:12], ref, builder.Name())
	src, err := build.Checkout(ctx, o.Repo, commit, ref, filepath.Join(scratch, "src"))
	if err != nil {
		return nil, err
	}
	job := build.Job{App: cfg.App, Dir: filepath.Join(src.Dir, prefix), Command: cfg.Build.Command, Env: cfg.Build.Env,
		Output: cfg.Build.Output, Target: cfg.Build.Target, Log: o.Log}
	// The remote builder keeps its caches on the build host.
	if len(cfg.Build.Caches) > 0 && builder.Name() != "remote" {
		key, err := build.CacheKey(job.Dir, builder.Identity())
		if err != nil {
			return nil, err
		}
		caches, err := build.OpenCaches(o.WorkDir, cfg.App, key, cfg.Build.Caches)
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
	out, err := build.CheckOutput(job)
	if err != nil {
		return nil, err
	}
	needs, err := release.Inspect(out)
	if err != nil {
		return nil, usererr.Wrap(err, "the release cannot run anywhere")
	}
	if _, arch, _ := strings.Cut(cfg.Build.Target, "/"); needs.Arch != "" && needs.Arch != arch {
		return nil, usererr.New("build.target is %s but the build made %s binaries", cfg.Build.Target, needs.Arch).
			WithHint("make the build honour GOOS/GOARCH (set by hoist), or set build.target to what it builds")
	}
	art, err := pack(cfg, out, id, src, needs, now(), o.WorkDir)
	if err != nil {
		return nil, err
	}
	recordArtifact(o.WorkDir, cfg.App, key, art)
	return art, nil
}

// artifactKey names what a build depends on: the source tree of the
// app's directory at the commit, the build settings and the builder.
func artifactKey(ctx context.Context, cfg *config.Config, b build.Builder, repo, commit, prefix string) (string, error) {
	tree, err := build.TreeHash(ctx, repo, commit, prefix)
	if err != nil {
		return "", err
	}
	settings, _ := json.Marshal(cfg.Build) // plain struct: cannot fail
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", cfg.App, tree, b.Identity(), settings)
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// artifactPath names a packed release by id and checksum: two builds of
// one commit in the same second share an id, never a file.
func artifactPath(workDir string, m *release.Manifest) string {
	return filepath.Join(workDir, "releases", m.App, m.ID+"."+m.SHA256[:12]+".tar.zst")
}

func artifactIndex(workDir, app, key string) string {
	return filepath.Join(workDir, "releases", app, "by-source", key+".json")
}

// findArtifact returns the packed release recorded under key, if its
// payload is still there and intact in size.
func findArtifact(workDir, app, key string) *Artifact {
	b, err := os.ReadFile(artifactIndex(workDir, app, key))
	if err != nil {
		return nil
	}
	m, err := release.ParseManifest(b)
	if err != nil {
		return nil
	}
	art := &Artifact{Manifest: m, Path: artifactPath(workDir, m)}
	if fi, err := os.Stat(art.Path); err != nil || fi.Size() != m.Size {
		return nil
	}
	return art
}

func recordArtifact(workDir, app, key string, art *Artifact) {
	p := artifactIndex(workDir, app, key)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		// Best effort: without the index, the next build builds again.
		tmp := p + ".tmp"
		if os.WriteFile(tmp, art.Manifest.Marshal(), 0o644) == nil {
			os.Rename(tmp, p)
		}
	}
}

func pack(cfg *config.Config, dir, id string, src *build.Source, needs release.Needs, builtAt time.Time, workDir string) (*Artifact, error) {
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
	goos, goarch, _ := strings.Cut(cfg.Build.Target, "/")
	m := &release.Manifest{App: cfg.App, ID: id, Commit: src.Commit, Ref: src.Ref, SHA256: sum, Size: size,
		BuiltAt: builtAt.UTC().Truncate(time.Second), OS: goos, Arch: goarch, GLIBC: needs.GLIBC}
	path := artifactPath(workDir, m)
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return &Artifact{Manifest: m, Path: path}, nil
}

func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// Spec is what hosts are told about the app.
func Spec(cfg *config.Config) *host.Spec {
	return &host.Spec{
		App: cfg.App, Command: cfg.Run.Command, Port: cfg.Run.Port, Env: cfg.Run.Env,
		HealthPath: cfg.Health.Path, HealthTimeout: cfg.Health.Timeout.Duration,
		HealthInterval: cfg.Health.Interval.Duration, KeepReleases: cfg.KeepReleases,
		BeforeSwitch: cfg.Hooks.BeforeSwitch, AfterSwitch: cfg.Hooks.AfterSwitch, HookTimeout: cfg.Hooks.Timeout.Duration,
		ProxyHosts: cfg.Proxy.Hosts, PathPrefix: cfg.Proxy.PathPrefix, DrainTimeout: cfg.Proxy.DrainTimeout.Duration,
		TLS: cfg.Proxy.TLS.On(), TLSInternal: cfg.Proxy.TLS.Mode == config.TLSInternal, HSTS: cfg.Proxy.HSTS, ACMEEmail: cfg.Proxy.ACMEEmail, ACMECA: cfg.Proxy.ACMECA,
		MaxBodyBytes: cfg.Proxy.MaxBodyBytes.Bytes,
	}
}

// Holder names this deploy in a lock: who, from where, and a token that
// tells two deploys of the same person apart.
func Holder(op string) host.Lock {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	machine, _ := os.Hostname()
	return host.Lock{Holder: fmt.Sprintf("%s@%s (pid %d)", who, machine, os.Getpid()), Since: time.Now().UTC().Truncate(time.Second), Op: op}
}

// ShipOptions says where a release goes.
type ShipOptions struct {
	Config *config.Config
	Hosts  []string
	Dial   fleet.DialFunc
	Log    io.Writer
	LogMu  *sync.Mutex
	Sudo   bool
	// SendEnv says to replace each host's secret environment file with
	// Env before the release starts.
	SendEnv bool
	Env     []byte
	// Meter, when set, follows each host's upload (a progress bar).
	Meter func(host string, have, total int64) Meter
}

// Meter follows one upload: Reader counts what is sent through it, Done
// ends it with the upload's result.
type Meter interface {
	Reader(r io.Reader) io.Reader
	Done(err error)
}

// Ship takes the artifact to every host and activates it there.
func Ship(ctx context.Context, o ShipOptions, art *Artifact) []fleet.Result {
	spec := Spec(o.Config)
	return o.locked(ctx, Holder("deploy "+art.Manifest.ID), func(ctx context.Context, h string, c *host.Client) error {
		if err := o.upload(ctx, h, c, art); err != nil {
			return err
		}
		if o.SendEnv {
			if err := c.SetEnv(ctx, o.Env); err != nil {
				return fmt.Errorf("send secrets: %w", err)
			}
		}
		o.logf(h)("activating %s", art.Manifest.ID)
		return c.Activate(ctx, spec, art.Manifest.ID)
	})
}

// Rollback activates release id (or, when id is "", the one before the
// current release) on every host.
func Rollback(ctx context.Context, o ShipOptions, id string) []fleet.Result {
	spec := Spec(o.Config)
	// A rollback goes back to a release that already ran: migrations and
	// other deploy hooks are not run again.
	spec.BeforeSwitch, spec.AfterSwitch = "", ""
	return o.locked(ctx, Holder("rollback"), func(ctx context.Context, h string, c *host.Client) error {
		target := id
		if target == "" {
			prev, err := c.Previous(ctx)
			if err != nil {
				return err
			}
			if prev == "" {
				return usererr.New("there is no earlier release to roll back to")
			}
			target = prev
		}
		o.logf(h)("rolling back to %s", target)
		return c.Activate(ctx, spec, target)
	})
}

func (o ShipOptions) logf(h string) func(string, ...any) {
	return func(format string, args ...any) {
		if o.LogMu != nil {
			o.LogMu.Lock()
			defer o.LogMu.Unlock()
		}
		fmt.Fprintf(o.Log, "%s: %s\n", h, fmt.Sprintf(format, args...))
	}
}

// locked runs fn on every reachable host while holding the app's deploy
// lock on all of them. The locks are taken one host at a time in a fixed
// order, so that of two deploys started together exactly one gets them
// all and the other is refused before it changes anything. A host that
// cannot be reached is reported and the others go ahead.
func (o ShipOptions) locked(ctx context.Context, lk host.Lock, fn func(ctx context.Context, h string, c *host.Client) error) []fleet.Result {
	members := fleet.Connect(ctx, o.Hosts, o.Config.SSH.Parallel, o.Dial)
	defer fleet.Close(members)
	client := func(m fleet.Member) *host.Client {
		return &host.Client{Conn: m.Conn, App: o.Config.App, Sudo: o.Sudo}
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return members[order[a]].Host < members[order[b]].Host })
	var held []int
	release := func() {
		// A fresh context: a cancelled deploy still frees its locks.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		for _, i := range held {
			if err := client(members[i]).Unlock(uctx, lk.Holder, false); err != nil {
				o.logf(members[i].Host)("warning: release lock: %v", err)
			}
		}
	}
	for _, i := range order {
		if members[i].Err != nil {
			continue
		}
		err := client(members[i]).Lock(ctx, lk)
		if err == nil {
			held = append(held, i)
			continue
		}
		release()
		results := make([]fleet.Result, len(members))
		for j, m := range members {
			results[j] = fleet.Result{Host: m.Host, Err: m.Err}
			if m.Err == nil {
				results[j].Err = usererr.New("not changed: the deploy lock on %s is taken", members[i].Host)
			}
		}
		results[i].Err = lockError(err)
		return results
	}
	defer release()
	return fleet.EachMember(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
		return fn(ctx, h, &host.Client{Conn: conn, App: o.Config.App, Sudo: o.Sudo})
	})
}

func lockError(err error) error {
	var le *host.LockedError
	if errors.As(err, &le) {
		return usererr.New("another deploy holds the lock: %s, since %s (%s)", le.Lock.Holder,
			le.Lock.Since.Local().Format("2006-01-02 15:04:05"), le.Lock.Op).
			WithHint("wait for it to finish; if it died, release the lock with `hoist lock release`")
	}
	return err
}

// upload sends the artifact, resuming where an earlier attempt stopped.
func (o ShipOptions) upload(ctx context.Context, h string, c *host.Client, art *Artifact) error {
	logf := o.logf(h)
	st, err := c.UploadState(ctx, art.Manifest)
	if err != nil {
		return err
	}
	if st.Unpacked {
		logf("release %s is already on the host", art.Manifest.ID)
		return nil
	}
	f, err := os.Open(art.Path)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(st.Have, io.SeekStart); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if st.Have > 0 {
		logf("resuming upload at %s of %s", byteSize(st.Have), byteSize(art.Manifest.Size))
	} else {
		logf("uploading %s (%s)", art.Manifest.ID, byteSize(art.Manifest.Size))
	}
	var r io.Reader = f
	if o.Meter != nil {
		m := o.Meter(h, st.Have, art.Manifest.Size)
		r = m.Reader(f)
		defer func() { m.Done(err) }()
	}
	err = c.Receive(ctx, art.Manifest, st.Have, r)
	return err
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
