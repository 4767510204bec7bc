//go:build integration

package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/loadtest"
	"github.com/hoistdev/hoist/internal/pebbletest"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/waittest"
)

// The upgrade tests run the proxy in the test process; an upgrade starts
// the test binary again, which TestMain turns into a proxy with the
// options in upgradeTestEnv, as `hoist proxy run` would be.
const (
	upgradeTestEnv = "HOIST_PROXY_UPGRADE_TEST"
	// upgradeFailEnv makes a successor fail: "exit" before it serves,
	// "hang" never ready, "wait:PATH" wait for PATH to exist first.
	upgradeFailEnv = "HOIST_PROXY_UPGRADE_TEST_FAIL"
)

// upgradeOptions are a test proxy's options, the same for every process.
type upgradeOptions struct {
	HTTP, HTTPS, Control, State, Storage, Metrics string
}

func (o upgradeOptions) run(cm *certs.Manager) RunOptions {
	return RunOptions{
		HTTP: o.HTTP, HTTPS: o.HTTPS, Control: o.Control, Metrics: o.Metrics,
		Options: Options{StatePath: o.State, Certs: cm, HealthInterval: 200 * time.Millisecond},
		Log:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Exec:    []string{os.Args[0]}, Issuer: "test", FastLoop: true, // as hoist proxy run
	}
}

func TestMain(m *testing.M) {
	if v := os.Getenv(upgradeTestEnv); v != "" {
		os.Exit(runSuccessor(v))
	}
	becomeSubreaper()
	os.Exit(m.Run())
}

// runSuccessor is the proxy in a process an upgrade started.
func runSuccessor(v string) int {
	var o upgradeOptions
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch fail := os.Getenv(upgradeFailEnv); {
	case fail == "exit":
		return 3
	case fail == "hang":
		select {}
	case strings.HasPrefix(fail, "wait:"):
		path := strings.TrimPrefix(fail, "wait:")
		os.WriteFile(path+".waiting", nil, 0o644)
		// Until the test creates path (it goes on after 30s without).
		waittest.Poll(30*time.Second, func() bool { _, err := os.Stat(path); return err == nil })
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cm, err := certs.New(certs.Options{Storage: o.Storage, Internal: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := Run(ctx, o.run(cm)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// upgradeRig is a proxy run by the test process, ready to upgrade.
type upgradeRig struct {
	o      upgradeOptions
	client *Client
	notes  chan string // sd_notify messages, from every generation
	runErr chan error  // the test process's Run
	roots  *x509.CertPool
	pids   []int // the processes upgrades started
}

func startUpgradeRig(t *testing.T) *upgradeRig {
	t.Helper()
	dir := t.TempDir()
	o := upgradeOptions{
		HTTP:    fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t)),
		HTTPS:   fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t)),
		Metrics: fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t)),
		Control: filepath.Join(dir, "proxy.sock"), State: filepath.Join(dir, "state.json"),
		Storage: filepath.Join(dir, "certificates"),
	}
	b, _ := json.Marshal(o)
	t.Setenv(upgradeTestEnv, string(b))
	notifySock := filepath.Join(dir, "notify.sock")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifySock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	t.Setenv("NOTIFY_SOCKET", notifySock)
	r := &upgradeRig{o: o, client: &Client{Socket: o.Control}, notes: make(chan string, 64), runErr: make(chan error, 1)}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := nl.Read(buf)
			if err != nil {
				return
			}
			r.notes <- string(buf[:n])
		}
	}()
	cm, err := certs.New(certs.Options{Storage: o.Storage, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.runErr <- Run(ctx, o.run(cm)) }()
	t.Cleanup(func() {
		cancel()
		r.stopSuccessors(t)
	})
	r.wantNote(t, "READY=1")

	plain := backend(t, "a", true)
	if _, err := r.client.SetRoute(context.Background(), route("a", plain.addr(), "plain.test")); err != nil {
		t.Fatal(err)
	}
	sec := backend(t, "b", true)
	if _, err := r.client.SetRoute(context.Background(), tlsRoute("b", sec.addr(), "tls.test")); err != nil {
		t.Fatal(err)
	}
	r.roots = x509.NewCertPool()
	if !r.roots.AppendCertsFromPEM(cm.InternalRoot()) {
		t.Fatal("no internal root")
	}
	_, port, _ := net.SplitHostPort(o.HTTPS)
	var p int
	fmt.Sscan(port, &p)
	waitHTTPS(t, p, "tls.test", r.roots, 20*time.Second)
	return r
}

// wantNote waits for an sd_notify message.
func (r *upgradeRig) wantNote(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var got []string
	for {
		select {
		case n := <-r.notes:
			if n == want {
				return
			}
			got = append(got, n)
		case <-timeout:
			t.Fatalf("no %q from the proxy; got %q", want, got)
		}
	}
}

// upgrade upgrades over the control socket and checks the new process
// told systemd it is the main one, and serves the control socket.
func (r *upgradeRig) upgrade(t *testing.T) int {
	t.Helper()
	before, err := r.client.Process(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := r.client.Upgrade(context.Background())
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if pid == before.PID || pid == 0 {
		t.Fatalf("upgrade from %d answered process %d", before.PID, pid)
	}
	r.wantNote(t, fmt.Sprintf("MAINPID=%d\nREADY=1", pid))
	now, err := r.client.Process(context.Background())
	if err != nil || now.PID != pid || now.Issuer != "test" {
		t.Fatalf("after the upgrade to %d the control socket answers %+v, %v", pid, now, err)
	}
	r.pids = append(r.pids, pid)
	return pid
}

// stopSuccessors stops the proxy processes upgrades started and reaps
// them: the test process is their parent or, once that exited, their
// subreaper.
func (r *upgradeRig) stopSuccessors(t *testing.T) {
	if len(r.pids) > 0 {
		syscall.Kill(r.pids[len(r.pids)-1], syscall.SIGTERM)
	}
	for _, pid := range r.pids {
		if err := waitExit(pid, 40*time.Second); err != nil && !errors.Is(err, syscall.ECHILD) {
			t.Errorf("proxy process left running: %v", err)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitExit waits for process pid, a child of the test process, to exit.
func waitExit(pid int, within time.Duration) error {
	done := make(chan error, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		return fmt.Errorf("process %d still runs after %s", pid, within)
	}
}

// TestUpgradeUnderTraffic upgrades three times, each new process taking
// over from the last, while clients send requests without pause over
// HTTP and HTTPS, with and without keep-alive: none fails. Each process
// tells systemd it is the main one, the last takes over the control
// socket, the one before exits, and a WebSocket open across an upgrade
// is closed with 1001 and reconnects.
func TestUpgradeUnderTraffic(t *testing.T) {
	r := startUpgradeRig(t)
	// One tls.Config each: a transport for HTTP/2 adds "h2" to its own.
	tlsConf := func() *tls.Config { return &tls.Config{RootCAs: r.roots, ServerName: "tls.test"} }
	// A loop wants the backend's answer, which names it and the scheme.
	loop := func(name string, c *http.Client, url, host, want string) *loadtest.Loop {
		return &loadtest.Loop{Name: name, Send: func() (string, error) {
			body, err := loadtest.Get(c, url, host)
			if err == nil && !strings.HasPrefix(body, want) {
				err = fmt.Errorf("answer %q, want %q...", body, want)
			}
			return body, err
		}}
	}
	plain := func(name string, c *http.Client) *loadtest.Loop {
		return loop(name, c, "http://"+r.o.HTTP+"/", "plain.test", "a xff=127.0.0.1 proto=http")
	}
	secure := func(name string, tr *http.Transport) *loadtest.Loop {
		return loop(name, &http.Client{Timeout: 10 * time.Second, Transport: tr}, "https://"+r.o.HTTPS+"/", "tls.test",
			"b xff=127.0.0.1 proto=https")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loops := loadtest.Start(&wg, stop,
		plain("http keep-alive", &http.Client{Timeout: 10 * time.Second}),
		plain("http one-shot", &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}),
		secure("https h2", &http.Transport{TLSClientConfig: tlsConf(), ForceAttemptHTTP2: true}),
		secure("https h1 one-shot", &http.Transport{TLSClientConfig: tlsConf(), DisableKeepAlives: true}),
		secure("https h1 keep-alive", &http.Transport{TLSClientConfig: tlsConf()}),
	)
	stopped := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopped()
	conn, br := dialWS(t, r.o.HTTP, "plain.test")
	defer conn.Close()
	if got := echo(t, conn, br, "hi"); got != "a:hi" {
		t.Fatalf("echo %q", got)
	}

	loadtest.WaitServed(t, loops, 20, 10*time.Second)
	var pids []int
	for i := 0; i < 3; i++ {
		pids = append(pids, r.upgrade(t))
		if i == 0 {
			// The test process handed over: its Run returns, nil.
			select {
			case err := <-r.runErr:
				if err != nil {
					t.Errorf("the first process's Run: %v", err)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("the first process did not finish after handing over")
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			op, payload, err := readFrame(br)
			if err != nil || op != 0x8 || len(payload) < 2 || int(payload[0])<<8|int(payload[1]) != 1001 {
				t.Errorf("WebSocket across the upgrade: op %d %x %v, want a close frame with 1001", op, payload, err)
			}
			conn.Close()
			conn, br = dialWS(t, r.o.HTTP, "plain.test")
			if got := echo(t, conn, br, "again"); got != "a:again" {
				t.Errorf("WebSocket after the upgrade: %q", got)
			}
		} else if err := waitExit(pids[i-1], 40*time.Second); err != nil {
			// The process it replaced is a child of the test process.
			t.Errorf("the process before %d: %v", pids[i], err)
		}
		loadtest.WaitServed(t, loops, 20, 10*time.Second)
	}
	stopped()
	if n := loadtest.Failed(t, loops); n != 0 {
		t.Errorf("%d requests failed across the upgrades", n)
	}
	// The metrics listener moved over too.
	resp, err := http.Get("http://" + r.o.Metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics after the upgrades: %v", err)
	}
	resp.Body.Close()
}

// An upgrade whose new process fails leaves the old one serving as
// before, the control socket and later upgrades included.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	r := startUpgradeRig(t)
	defer func(d time.Duration) { readyTimeout = d }(readyTimeout)
	readyTimeout = 2 * time.Second
	tests := []struct{ fail, want string }{
		{"exit", "exited before it was ready"},
		{"hang", "was not ready within 2s"},
	}
	for _, tt := range tests {
		t.Setenv(upgradeFailEnv, tt.fail)
		if _, err := r.client.Upgrade(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("upgrade to a process that fails (%s): %v, want %q", tt.fail, err, tt.want)
		}
		if p, err := r.client.Process(context.Background()); err != nil || p.PID != os.Getpid() {
			t.Errorf("after the failed upgrade (%s), the control socket answers %+v, %v", tt.fail, p, err)
		}
		if code, body := getVia(t, r.o.HTTP, "plain.test"); code != 200 || !strings.HasPrefix(body, "a ") {
			t.Errorf("after the failed upgrade (%s): %d %q", tt.fail, code, body)
		}
	}
	// The old process claims the main PID back, in case the failed one
	// had claimed it.
	r.wantNote(t, fmt.Sprintf("MAINPID=%d", os.Getpid()))
	t.Setenv(upgradeFailEnv, "")
	r.upgrade(t)
}

// Route changes never fall between the processes: one under way when an
// upgrade starts finishes first, and the new process reads it; one sent
// while the new process starts is held back and passed on to it.
func TestUpgradeHoldsRouteChanges(t *testing.T) {
	r := startUpgradeRig(t)
	var checks atomic.Int64
	slow := backend(t, "slow", false, func(s *http.Server) {
		h := s.Handler
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/up" {
				checks.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	changed := make(chan error, 2)
	go func() {
		rt := route("a", slow.addr(), "plain.test")
		rt.HealthTimeout = hostproto.Duration{Duration: 20 * time.Second}
		_, err := r.client.SetRoute(context.Background(), rt)
		changed <- err
	}()
	// The change is under way once the proxy checks the new upstream.
	waittest.For(t, "the proxy to check the new upstream", func() bool { return checks.Load() > 0 })
	wait := filepath.Join(t.TempDir(), "go")
	t.Setenv(upgradeFailEnv, "wait:"+wait)
	upgraded := make(chan error, 1)
	var pid int
	go func() {
		var err error
		pid, err = r.client.Upgrade(context.Background())
		upgraded <- err
	}()
	select {
	case err := <-upgraded:
		t.Fatalf("the upgrade did not wait for the route change under way: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	slow.healthy.Store(true)
	if err := <-changed; err != nil {
		t.Fatalf("route change: %v", err)
	}
	waittest.For(t, "the new process to start", func() bool {
		_, err := os.Stat(wait + ".waiting")
		return err == nil
	})
	// The new process has started but does not serve yet: this change
	// waits in the old one.
	later := backend(t, "later", true)
	go func() {
		_, err := r.client.SetRoute(context.Background(), route("c", later.addr(), "later.test"))
		changed <- err
	}()
	os.WriteFile(wait, nil, 0o644)
	if err := <-upgraded; err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	r.pids = append(r.pids, pid)
	if err := <-changed; err != nil {
		t.Fatalf("route change during the upgrade: %v", err)
	}
	routes, err := r.client.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rt := range routes {
		got = append(got, rt.App+"="+rt.Upstream)
	}
	slices.Sort(got)
	want := []string{"a=" + slow.addr(), "b=" + routeOf(routes, "b"), "c=" + later.addr()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the new process's routes: %v, want %v", got, want)
	}
	if code, body := getVia(t, r.o.HTTP, "later.test"); code != 200 || !strings.HasPrefix(body, "later ") {
		t.Errorf("the route changed during the upgrade: %d %q", code, body)
	}
}

func routeOf(rs []hostproto.Route, app string) string {
	for _, r := range rs {
		if r.App == app {
			return r.Upstream
		}
	}
	return ""
}

// getVia fetches / for host from the proxy at addr.
func getVia(t *testing.T, addr, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
