// Package deploy is the client side of a deploy and a rollback: it builds
// a release from a commit, packs it, and takes it to every host (lock,
// resumable upload, activation behind a health check, unlock).
package deploy

import (
	"bytes"
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

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/filelock"
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
	// Reused is set when the release was packed by an earlier build.
	Reused bool

	indexOnce sync.Once
	index     *release.Index
	indexErr  error
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
	// Verbose shows the build's own output as it comes; otherwise only
	// its last lines are shown, and only if it fails.
	Verbose bool
}

// Build checks out the commit, builds it, and packs the release; or
// returns the release already packed from the same source, when nothing
// the build sees has changed since.
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
	scope, err := build.Locate(ctx, o.Repo, cfg.Build.Include)
	if err != nil {
		return nil, err
	}
	commit, err := build.Resolve(ctx, scope.Top, ref)
	if err != nil {
		return nil, err
	}
	if ref == "HEAD" {
		warnDirty(ctx, o.Log, scope, o.Repo)
	}
	builder, err := build.New(cfg.Build, build.Deps{CacheDir: o.WorkDir, Dial: o.Dial})
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
	src, err := build.Checkout(ctx, scope, commit, ref, filepath.Join(scratch, "src"))
	if err != nil {
		return nil, err
	}
	job := build.Job{App: cfg.App, Root: src.Dir, Dir: src.AppDir, Command: cfg.Build.Command, Env: cfg.Build.Env,
		Output: cfg.Build.Output, Target: cfg.Build.Target, Log: o.Log}
	if !o.Verbose {
		job.Out = build.NewTail(buildTailLines)
	}
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
	fmt.Fprintf(o.Log, "built release %s from commit %s (%s, sha256 %s)\n", id, short(commit), bytesize.String(art.Manifest.Size), art.Manifest.SHA256[:16])
	return art, nil
}

// buildTailLines is how much of a quiet build's output a failure shows.
const buildTailLines = 30

// artifactKey names what a build depends on: what the build sees of
// the commit, the build settings and the builder.
func artifactKey(ctx context.Context, cfg *config.Config, b build.Builder, scope build.Scope, commit string) (string, error) {
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
func reuseReason(built, want string, scope build.Scope) string {
	if built == want {
		return "the same commit"
	}
	return "nothing under " + scope.Describe() + " changed since"
}

// warnDirty names the uncommitted changes that are not shipped: those
// the build would see one by one, the others (another app's) in a count.
func warnDirty(ctx context.Context, log io.Writer, scope build.Scope, appDir string) {
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

// Spec is what hosts are told about the app.
func Spec(cfg *config.Config) *host.Spec {
	return &host.Spec{
		App: cfg.App, Command: cfg.Run.Command, Port: cfg.Run.Port, Env: cfg.Run.Env,
		HealthPath: cfg.Health.Path, HealthTimeout: cfg.Health.Timeout.Duration,
		HealthInterval: cfg.Health.Interval.Duration, KeepReleases: cfg.KeepReleases,
		BeforeSwitch: cfg.Hooks.BeforeSwitch, AfterSwitch: cfg.Hooks.AfterSwitch, HookTimeout: cfg.Hooks.Timeout.Duration,
		ErlangNetwork: erlangNetwork(cfg.Run.Erlang),
		ProxyHosts:    cfg.Proxy.Hosts, PathPrefix: cfg.Proxy.PathPrefix, DrainTimeout: cfg.Proxy.DrainTimeout.Duration,
		TLS: cfg.Proxy.TLS.On(), TLSInternal: cfg.Proxy.TLS.Mode == config.TLSInternal, HSTS: cfg.Proxy.HSTS, ACMEEmail: cfg.Proxy.ACMEEmail, ACMECA: cfg.Proxy.ACMECA,
		MaxBodyBytes: cfg.Proxy.MaxBodyBytes.Bytes, ErrorPages: cfg.Proxy.Pages,
	}
}

// erlangNetwork is the network an OTP release listens in; "" is loopback.
func erlangNetwork(e config.Erlang) string {
	if e.Listen == config.ListenLoopback {
		return ""
	}
	return e.Listen
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
	// SendEnv says to replace each host's secret environment file with
	// Env before the release starts.
	SendEnv bool
	Env     []byte
	// Meter, when set, follows each host's transfer (a progress bar).
	Meter func(host string, have, total int64) Meter
	// Members are the hosts already dialled (Connect), in the order of
	// Hosts; nil dials them.
	Members []fleet.Member
	// Client makes the host client of a connection (with the
	// destination and who deploys); nil makes a plain one.
	Client func(transport.Conn) *host.Client
	// Verbose shows each host's activation log as it comes, each line
	// prefixed with its host; otherwise only a failure's is shown.
	Verbose bool
	// WorkDir holds the releases packed here: the bases of deltas.
	WorkDir string
	// Full sends every host the whole release, whatever it holds.
	Full bool
	// Balancer, when set, fronts the hosts: each leaves it while it
	// switches.
	Balancer Balancer
	// Stage only puts the release on the hosts: none switches.
	Stage bool
}

// Connect dials every host of o, so that a deploy can name the hosts it
// cannot reach before it spends time on a build. The caller closes them
// with fleet.Close.
func (o ShipOptions) Connect(ctx context.Context) []fleet.Member {
	return fleet.Connect(ctx, o.Hosts, o.Config.SSH.Parallel, o.Dial)
}

// Meter follows one transfer: Add counts content sent, Done ends it
// with the transfer's result.
type Meter interface {
	Add(n int64)
	Done(err error)
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
		return o.activate(ctx, h, c, spec, target, "rollback")
	})
}

// activate activates release id on host h, showing its activation log
// when o is verbose, and else only what it warns of; op says what for in
// the host's audit trail.
func (o ShipOptions) activate(ctx context.Context, h string, c *host.Client, spec *host.Spec, id, op string) error {
	log := &fleet.PrefixWriter{W: o.Log, Prefix: h + ": ", Mu: o.LogMu}
	defer log.Flush()
	if o.Verbose {
		return c.Activate(ctx, spec, id, op, log)
	}
	return c.Activate(ctx, spec, id, op, &warnings{w: log})
}

// warnings passes on the lines of an activation log that warn
// ("  1.2s warning: ...").
type warnings struct {
	w   io.Writer
	buf []byte
}

func (f *warnings) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := f.buf[:i+1]
		if _, msg, ok := bytes.Cut(bytes.TrimLeft(line, " "), []byte("s ")); ok && bytes.HasPrefix(msg, []byte("warning:")) {
			if _, err := f.w.Write(line); err != nil {
				return 0, err
			}
		}
		f.buf = f.buf[i+1:]
	}
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
// lock on all of them (lockAll).
func (o ShipOptions) locked(ctx context.Context, lk host.Lock, fn func(ctx context.Context, h string, c *host.Client) error) []fleet.Result {
	members, unlock, refused := o.lockAll(ctx, lk)
	defer unlock()
	if refused != nil {
		return refused
	}
	return fleet.EachMember(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
		return fn(ctx, h, o.clientOf(conn))
	})
}

func (o ShipOptions) client(m fleet.Member) *host.Client { return o.clientOf(m.Conn) }

// clientOf is the host client of conn: o.Client's, or a plain one.
func (o ShipOptions) clientOf(conn transport.Conn) *host.Client {
	if o.Client != nil {
		return o.Client(conn)
	}
	return &host.Client{Conn: conn, App: o.Config.App}
}

// lockAll takes the app's deploy lock on every reachable host, one host
// at a time in a fixed order, so that of two deploys started together
// exactly one gets them all and the other is refused before it changes
// anything: then refused holds every host's result. unlock frees the
// locks held (and the connections lockAll dialled).
func (o ShipOptions) lockAll(ctx context.Context, lk host.Lock) (members []fleet.Member, unlock func(), refused []fleet.Result) {
	members = o.Members
	closeAll := func() {}
	if members == nil {
		members = o.Connect(ctx)
		closeAll = func() { fleet.Close(members) }
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
			if err := o.client(members[i]).Unlock(uctx, lk.Holder, false); err != nil {
				o.logf(members[i].Host)("warning: release lock: %v", err)
			}
		}
	}
	unlock = func() { release(); closeAll() }
	if err := fleet.Distinct(members); err != nil {
		refused = make([]fleet.Result, len(members))
		for i, m := range members {
			refused[i] = fleet.Result{Host: m.Host, Err: err}
		}
		return members, unlock, refused
	}
	for _, i := range order {
		if members[i].Err != nil {
			continue
		}
		err := o.client(members[i]).Lock(ctx, lk)
		if err == nil {
			held = append(held, i)
			continue
		}
		release()
		held = nil
		results := make([]fleet.Result, len(members))
		for j, m := range members {
			results[j] = fleet.Result{Host: m.Host, Err: m.Err}
			if m.Err == nil {
				results[j].Err = usererr.New("not changed: the deploy lock on %s is taken", members[i].Host)
			}
		}
		results[i].Err = lockError(err)
		return members, unlock, results
	}
	return members, unlock, nil
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
