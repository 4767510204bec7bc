package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// An upgrade replaces the running proxy process by a new one started
// from the hoist binary on disk, with no moment when connections wait
// (systemctl reload hoist-proxy, hoist proxy upgrade, or SIGHUP):
//
//  1. the running proxy, the predecessor, holds route changes back and
//     starts the binary with its own arguments, passing its listening
//     sockets (public, control, metrics) as inherited descriptors named
//     in LISTEN_FDS and LISTEN_FDNAMES, as systemd does, and two pipes;
//  2. the successor reads the routes from the state file, serves, tells
//     systemd it is the main process now (MAINPID=, READY=1; the unit has
//     NotifyAccess=all), and then its predecessor, by a byte on the first
//     pipe;
//  3. the predecessor stops accepting, passes the route changes it held
//     back on to the successor, closes its WebSockets with 1001 Going
//     Away, finishes its requests in flight and exits. The successor sees
//     the second pipe close then (or when the predecessor dies): until
//     that, it answers no drain wait and starts no upgrade of its own, so
//     at most two processes run and a deploy never stops an upstream the
//     predecessor still serves.
//
// A successor that is not ready within readyTimeout, or exits first, is
// killed, and the predecessor carries on as if nothing had happened.
//
// This is the pattern of nginx's binary upgrade and of cloudflare's
// tableflip; systemd holds the sockets too, so that a crash or a restart
// loses no listening socket either, only time.

// upgradeEnv marks a process started by an upgrade:
// "PARENT_PID,READY_FD,PARENT_FD". Unlike LISTEN_PID, the parent knows
// it before the child exists; the child checks it against its parent.
const upgradeEnv = "HOIST_PROXY_UPGRADE"

// Bounds: the successor's start, and a whole upgrade, which includes
// waiting for route changes under way and for a predecessor's drain. The
// unit's TimeoutStartSec (90s), which bounds a reload, is longer.
var readyTimeout = 30 * time.Second

const upgradeTimeout = 75 * time.Second

// Process is what a running proxy says of itself on GET /v1/process.
type Process struct {
	PID int `json:"pid"`
	// Issuer fingerprints the issuer settings it runs with
	// (RunOptions.Issuer).
	Issuer string `json:"issuer"`
}

// upgrader is Run's side of upgrades: as a predecessor, it starts a
// successor and hands over; as a successor, it reports ready and tracks
// its predecessor.
type upgrader struct {
	exec    []string // the successor's command line; none: no upgrades
	issuer  string
	control string // socket path, to pass held route changes on
	log     *slog.Logger

	passed []namedListener // what a successor inherits, in order
	// stops stop this process's listeners accepting, at the hand-over.
	stops []*stoppableListener

	mu        sync.Mutex // one upgrade at a time
	held      gate
	successor atomic.Int64  // its pid, once handed over
	handed    chan struct{} // closed once handed over
	lost      chan struct{} // closed if the successor exits after that
	parentFD  *os.File      // closed when Run returns, for the successor

	readyPipe *os.File      // to the predecessor; nil if none
	predGone  chan struct{} // closed once no predecessor runs
}

type namedListener struct {
	name string
	ln   net.Listener
}

// startedByUpgrade reports whether this process is a successor.
func startedByUpgrade() bool {
	_, _, ok := upgradePipes(os.Getenv(upgradeEnv))
	return ok
}

// upgradePipes reads upgradeEnv's value, if this process's parent set it.
func upgradePipes(v string) (ready, parent int, ok bool) {
	f := strings.Split(v, ",")
	if len(f) != 3 || f[0] != strconv.Itoa(os.Getppid()) {
		return 0, 0, false
	}
	ready, err1 := strconv.Atoi(f[1])
	parent, err2 := strconv.Atoi(f[2])
	return ready, parent, err1 == nil && err2 == nil
}

// newUpgrader takes the pipes from a predecessor, if this process has
// one. Call it after systemdListeners, which takes the sockets.
func newUpgrader(o RunOptions) *upgrader {
	u := &upgrader{exec: o.Exec, issuer: o.Issuer, control: o.Control, log: o.Log,
		handed: make(chan struct{}), lost: make(chan struct{}), predGone: make(chan struct{})}
	readyFD, parentFD, ok := upgradePipes(os.Getenv(upgradeEnv))
	os.Unsetenv(upgradeEnv)
	if !ok {
		close(u.predGone)
		return u
	}
	syscall.CloseOnExec(readyFD)
	syscall.CloseOnExec(parentFD)
	u.readyPipe = os.NewFile(uintptr(readyFD), "upgrade-ready")
	parent := os.NewFile(uintptr(parentFD), "upgrade-parent")
	go func() {
		// The predecessor never writes: this ends when it has finished.
		io.Copy(io.Discard, parent)
		parent.Close()
		close(u.predGone)
	}()
	return u
}

// listener passes ln to successors under name, and returns it for this
// process to serve until it hands over.
func (u *upgrader) listener(name string, ln net.Listener) net.Listener {
	if ul, ok := ln.(*net.UnixListener); ok {
		// A successor may serve the socket: closing it never unlinks
		// it; Run removes it when it stops serving it for good.
		ul.SetUnlinkOnClose(false)
	}
	u.passed = append(u.passed, namedListener{name, ln})
	sl := &stoppableListener{Listener: ln}
	u.stops = append(u.stops, sl)
	return sl
}

// ready tells systemd, and the predecessor if any, that this process
// serves. MAINPID goes to systemd first: the predecessor exits only
// once told, and systemd reads notifications before exit statuses.
func (u *upgrader) ready() {
	if u.readyPipe == nil {
		notify("READY=1")
		return
	}
	notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()))
	// The pipe stays open: its end tells the predecessor this one exited.
	if _, err := u.readyPipe.Write([]byte{1}); err != nil {
		u.log.Warn("could not tell the previous proxy process it may stop", "err", err)
	}
}

// finished tells a successor this process has finished (Run returned).
func (u *upgrader) finished() {
	if u.parentFD != nil {
		u.parentFD.Close()
	}
}

// handedOver reports whether a successor took over.
func (u *upgrader) handedOver() bool { return u.successor.Load() != 0 }

// bound returns ctx, canceled early if the successor exits while this
// process finishes its requests: systemd, which does not see the exit of
// a process it did not start, learns of it when this one exits too.
func (u *upgrader) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-u.lost:
			u.log.Warn("the new proxy process exited; stopping now so that systemd restarts the service")
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// onSignal upgrades on SIGHUP until ctx ends.
func (u *upgrader) onSignal(ctx context.Context) {
	if len(u.exec) == 0 {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				u.upgradeLogged(ctx)
			}
		}
	}()
}

func (u *upgrader) upgradeLogged(ctx context.Context) (int, error) {
	pid, err := u.upgrade(ctx)
	if err != nil {
		u.log.Error("upgrade failed; this process keeps serving", "err", err)
	} else {
		u.log.Info("upgraded: the new proxy process serves; this one finishes its requests", "pid", pid)
	}
	return pid, err
}

// upgrade starts a successor and hands over to it. It returns the
// successor's pid once that serves, or why not, this process serving on.
func (u *upgrader) upgrade(ctx context.Context) (int, error) {
	if len(u.exec) == 0 {
		return 0, errors.New("upgrade: this proxy was started without a command to upgrade to")
	}
	if !u.mu.TryLock() {
		return 0, errors.New("upgrade: another upgrade is under way")
	}
	defer u.mu.Unlock()
	if pid := u.successor.Load(); pid != 0 {
		return 0, fmt.Errorf("upgrade: this process already handed over to process %d", pid)
	}
	ctx, cancel := context.WithTimeout(ctx, upgradeTimeout)
	defer cancel()
	select {
	case <-u.predGone:
	case <-ctx.Done():
		return 0, errors.New("upgrade: the previous proxy process is still finishing its requests; try again")
	}
	// The successor reads the routes once: none may change meanwhile.
	if err := u.held.close(ctx); err != nil {
		return 0, fmt.Errorf("upgrade: route changes still under way: %w", err)
	}
	defer u.held.open()
	s, err := u.start()
	if err != nil {
		return 0, err
	}
	rctx, rcancel := context.WithTimeout(ctx, readyTimeout)
	defer rcancel()
	if err := s.waitReady(rctx); err != nil {
		// In case it told systemd it was the main process before it failed.
		notify(fmt.Sprintf("MAINPID=%d", os.Getpid()))
		return 0, err
	}
	pid := s.proc.Pid
	u.successor.Store(int64(pid))
	u.parentFD = s.parent
	// Before the route changes held back go on: from now on only the
	// successor, which has them, takes connections.
	for _, l := range u.stops {
		l.stop()
	}
	close(u.handed)
	go func() {
		s.ready.Read(make([]byte, 1)) // returns when the successor exits
		close(u.lost)
	}()
	return pid, nil
}

// successor is a proxy process an upgrade started.
type successor struct {
	proc   *os.Process
	ready  *os.File // its first byte says ready; EOF, gone
	parent *os.File // the successor reads EOF once this is closed
}

// start runs u.exec with the listeners and the two pipes. It uses
// syscall.ForkExec with the listeners' own descriptors: os/exec would
// take them through os.File.Fd, which puts a socket in blocking mode,
// and the mode belongs to the socket, shared with this process's
// listeners, whose Accept could then no longer be interrupted.
func (u *upgrader) start() (*successor, error) {
	fds := []uintptr{0, 1, 2}
	names := make([]string, len(u.passed))
	for i, p := range u.passed {
		fd, err := socketFD(p.ln)
		if err != nil {
			return nil, fmt.Errorf("upgrade: pass the %s listener: %w", p.name, err)
		}
		fds = append(fds, fd)
		names[i] = p.name
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer readyW.Close() // the child has its own copy
	parentR, parentW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer parentR.Close()
	n := len(u.passed)
	fds = append(fds, readyW.Fd(), parentR.Fd())
	env := append(environWithout("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", upgradeEnv),
		"LISTEN_FDS="+strconv.Itoa(n), "LISTEN_FDNAMES="+strings.Join(names, ":"),
		fmt.Sprintf("%s=%d,%d,%d", upgradeEnv, os.Getpid(), 3+n, 4+n))
	pid, err := syscall.ForkExec(u.exec[0], u.exec, &syscall.ProcAttr{Env: env, Files: fds})
	if err != nil {
		readyR.Close()
		parentW.Close()
		return nil, fmt.Errorf("upgrade: start %s: %w", u.exec[0], err)
	}
	proc, _ := os.FindProcess(pid) // never fails on Unix
	return &successor{proc: proc, ready: readyR, parent: parentW}, nil
}

// socketFD returns ln's descriptor, which stays ln's.
func socketFD(ln net.Listener) (uintptr, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil {
		return 0, err
	}
	return fd, nil
}

// waitReady waits for the successor's ready byte; if it exits first or
// ctx ends, the successor is gone when it returns.
func (s *successor) waitReady(ctx context.Context) error {
	read := make(chan error, 1)
	go func() {
		_, err := s.ready.Read(make([]byte, 1))
		read <- err
	}()
	var err error
	select {
	case err = <-read:
		if err == nil {
			return nil
		}
		st, werr := s.proc.Wait()
		if werr == nil {
			werr = errors.New(st.String())
		}
		err = fmt.Errorf("upgrade: the new proxy process (%d) exited before it was ready: %v (its log says why)", s.proc.Pid, werr)
	case <-ctx.Done():
		s.proc.Kill()
		s.proc.Wait()
		err = fmt.Errorf("upgrade: the new proxy process (%d) was not ready within %s; it was stopped", s.proc.Pid, readyTimeout)
	}
	s.ready.Close()
	s.parent.Close()
	return err
}

func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// controlHandler adds upgrades to the control API and keeps it right
// across one:
//
//	POST /v1/upgrade   start the hoist binary on disk and hand over to it
//	                   (answers {"pid": N} once it serves)
//	GET  /v1/process   this process: Process
//
// Route changes wait while an upgrade hands over and, once it did, go
// on to the successor; a drain wait waits for the predecessor to exit.
func (u *upgrader) controlHandler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/upgrade", func(w http.ResponseWriter, r *http.Request) {
		pid, err := u.upgradeLogged(r.Context())
		if err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"pid": pid})
	})
	mux.HandleFunc("GET /v1/process", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Process{PID: os.Getpid(), Issuer: u.issuer})
	})
	mux.HandleFunc("POST /v1/drained", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-u.predGone:
			next.ServeHTTP(w, r)
		case <-r.Context().Done():
			writeErr(w, http.StatusGatewayTimeout, errors.New("the previous proxy process is still finishing its requests"))
		}
	})
	successor := &httputil.ReverseProxy{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", u.control)
		}},
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: "proxy"}) },
	}
	change := func(w http.ResponseWriter, r *http.Request) {
		if err := u.held.enter(r.Context()); err != nil {
			writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("the proxy is upgrading: %w", err))
			return
		}
		defer u.held.leave()
		if u.handedOver() {
			successor.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}
	mux.HandleFunc("PUT /v1/routes/{app}", change)
	mux.HandleFunc("DELETE /v1/routes/{app}", change)
	mux.Handle("/", next)
	return mux
}

// inherited returns the inherited listener named name, if any.
func inherited(ls []inheritedListener, name string) net.Listener {
	for _, l := range ls {
		if l.name == name {
			return l.ln
		}
	}
	return nil
}

// inheritedOr returns the inherited listener named name, or listens on
// the TCP address addr.
func inheritedOr(ls []inheritedListener, name, addr string) (net.Listener, error) {
	if ln := inherited(ls, name); ln != nil {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// controlListener returns the inherited control socket, or listens on
// path, a socket only this process's user (and root) may connect to.
func controlListener(ls []inheritedListener, path string) (net.Listener, error) {
	if ln := inherited(ls, "control"); ln != nil {
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	os.Remove(path)
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// stoppableListener stops a predecessor's server accepting without
// closing the socket its successor serves: Accept says the server was
// closed.
type stoppableListener struct {
	net.Listener
	stopped atomic.Bool
}

func (l *stoppableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil && l.stopped.Load() {
		return nil, http.ErrServerClosed
	}
	return c, err
}

func (l *stoppableListener) stop() {
	l.stopped.Store(true)
	l.Listener.Close()
}

// gate holds route changes back while an upgrade hands over.
type gate struct {
	mu      sync.Mutex
	active  int
	closed  bool
	changed chan struct{} // closed and replaced at every change
}

// enter waits until the gate is open and counts a change under way.
func (g *gate) enter(ctx context.Context) error {
	g.mu.Lock()
	for g.closed {
		if err := g.wait(ctx); err != nil {
			return err
		}
	}
	g.active++
	g.mu.Unlock()
	return nil
}

func (g *gate) leave() {
	g.mu.Lock()
	g.active--
	g.signal()
	g.mu.Unlock()
}

// close holds new changes back and waits for those under way to end;
// if ctx ends first, the gate is open again.
func (g *gate) close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	for g.active > 0 {
		if err := g.wait(ctx); err != nil {
			g.open()
			return err
		}
	}
	g.mu.Unlock()
	return nil
}

func (g *gate) open() {
	g.mu.Lock()
	g.closed = false
	g.signal()
	g.mu.Unlock()
}

// wait, called locked, waits for a change; on error it returns unlocked.
func (g *gate) wait(ctx context.Context) error {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	ch := g.changed
	g.mu.Unlock()
	select {
	case <-ch:
		g.mu.Lock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) signal() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}
