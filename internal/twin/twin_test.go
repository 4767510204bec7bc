package twin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// backend is a target: it answers / with its name and the forwarded
// headers it got, and its health check as told.
type backend struct {
	name    string
	srv     *httptest.Server
	healthy atomic.Bool
	served  atomic.Int64
	hold    atomic.Pointer[chan struct{}] // when set, / waits for it
}

func (b *backend) holdOn(c chan struct{}) { b.hold.Store(&c) }

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name}
	b.healthy.Store(true)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.hoist/up/shop" {
			if !b.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		b.served.Add(1)
		if c := b.hold.Load(); c != nil && *c != nil {
			<-*c
		}
		fmt.Fprintf(w, "%s host=%s for=%s proto=%s port=%s", b.name, r.Host, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Port"))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// twinOn runs a twin on loopback with a certificate from the lab's CA.
type running struct {
	s           *Server
	http, https string
	client      *http.Client
	control     *Client
	dir         string
	cancel      func()
	done        chan error
}

func startTwin(t *testing.T, dir string, delay time.Duration) *running {
	t.Helper()
	caPath, err := IssueCert(dir, []string{"shop.test"}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{CertFile: filepath.Join(dir, CertFile), KeyFile: filepath.Join(dir, KeyFile), StatePath: filepath.Join(dir, "state.json"),
		HealthPath: "/.hoist/up/shop", Interval: Duration{20 * time.Millisecond}, Timeout: Duration{time.Second},
		HealthyThreshold: 2, UnhealthyThreshold: 2, DeregistrationDelay: Duration{delay}}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	listen := func(network, addr string) net.Listener {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	h, hs := listen("tcp", "127.0.0.1:0"), listen("tcp", "127.0.0.1:0")
	sock := filepath.Join(dir, "control.sock")
	ctl := listen("unix", sock)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, http: h.Addr().String(), https: hs.Addr().String(), control: &Client{Socket: sock}, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, h, hs, ctl) }()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	r.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "shop.test"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // a second stop returns at once
}

// get asks the twin over HTTPS, as a client of shop.test with its own
// X-Forwarded-For.
func (r *running) get(t *testing.T) (int, string) {
	t.Helper()
	code, body, err := r.try()
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func (r *running) try() (int, string, error) {
	req, _ := http.NewRequest("GET", "https://"+r.https+"/", nil)
	req.Host = "shop.test"
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitState waits until target's state is want.
func (r *running) waitState(t *testing.T, target, want string) {
	t.Helper()
	var h []TargetHealth
	var err error
	if !waittest.Poll(10*time.Second, func() bool {
		h, err = r.control.Health(context.Background(), target)
		return err != nil || h[0].State == want
	}) {
		t.Fatalf("after 10s %s is %s (%s), want %s", target, h[0].State, h[0].Reason, want)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestTwinForwardsAsTheALB: HTTP is redirected to HTTPS; over HTTPS,
// with the lab CA's certificate, a request reaches a healthy target with
// the client's Host, its address appended to X-Forwarded-For, and the
// scheme and port it came in on.
func TestTwinForwardsAsTheALB(t *testing.T) {
	r := startTwin(t, t.TempDir(), time.Second)
	a := newBackend(t, "a")
	ctx := context.Background()
	if code, _ := r.get(t); code != http.StatusServiceUnavailable {
		t.Errorf("with no target: %d, want 503", code)
	}
	if err := r.control.Register(ctx, a.addr()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, a.addr(), StateHealthy)
	code, body := r.get(t)
	if want := "a host=shop.test for=198.51.100.7, 127.0.0.1 proto=https port=443"; code != 200 || body != want {
		t.Errorf("over HTTPS: %d %q, want %q", code, body, want)
	}
	resp, err := r.client.Get("http://" + r.http + "/cart?item=3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The client follows to its own host name (here the twin's address).
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://127.0.0.1/cart?item=3" {
		t.Errorf("over HTTP: %d to %q, want 301 to https://127.0.0.1/cart?item=3", resp.StatusCode, loc)
	}
}

// TestTwinHealthChecks: a target gets requests once healthy, none while
// unhealthy with a healthy one beside it, and all of them when none is
// healthy (fail open, as the ALB).
func TestTwinHealthChecks(t *testing.T) {
	r := startTwin(t, t.TempDir(), time.Second)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	ctx := context.Background()
	b.healthy.Store(false)
	if err := r.control.Register(ctx, a.addr(), b.addr()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, a.addr(), StateHealthy)
	r.waitState(t, b.addr(), StateUnhealthy)
	if h, _ := r.control.Health(ctx, b.addr()); !strings.Contains(h[0].Reason, "503") {
		t.Errorf("reason of an unhealthy target: %q", h[0].Reason)
	}
	for range 6 {
		if _, body := r.get(t); !strings.HasPrefix(body, "a ") {
			t.Fatalf("a request went to %q, not the healthy target", body)
		}
	}
	a.healthy.Store(false)
	r.waitState(t, a.addr(), StateUnhealthy)
	seen := map[string]bool{}
	for range 6 {
		_, body := r.get(t)
		seen[body[:1]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("with no healthy target, requests went to %v, want both", seen)
	}
}

// TestTwinDeregistration: a deregistered target drains (its request in
// flight finishes, no new one comes) and is then unused; its
// registration survives a restart of the twin, and one that hangs is
// cut at the deregistration delay.
func TestTwinDeregistration(t *testing.T) {
	dir := t.TempDir()
	r := startTwin(t, dir, 2*time.Second)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	ctx := context.Background()
	if err := r.control.Register(ctx, a.addr(), b.addr()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, a.addr(), StateHealthy)
	r.waitState(t, b.addr(), StateHealthy)
	hold := make(chan struct{})
	a.holdOn(hold)
	b.holdOn(hold)
	// One request in flight on each.
	got := make(chan string, 2)
	for range 2 {
		go func() { _, body, _ := r.try(); got <- body }()
	}
	waittest.For(t, "a request to reach each target", func() bool { return a.served.Load()+b.served.Load() >= 2 })
	if err := r.control.Deregister(ctx, a.addr()); err != nil {
		t.Fatal(err)
	}
	if h, _ := r.control.Health(ctx, a.addr()); h[0].State != StateDraining {
		t.Fatalf("with a request in flight, the deregistered target is %s, want draining", h[0].State)
	}
	b.holdOn(nil)
	for range 4 {
		if _, body := r.get(t); !strings.HasPrefix(body, "b ") {
			t.Fatalf("a new request went to the draining target: %q", body)
		}
	}
	close(hold)
	<-got
	<-got
	r.waitState(t, a.addr(), StateUnused)

	// The registrations are kept: b alone comes back, checked again.
	r.stop()
	r2 := startTwin(t, dir, 500*time.Millisecond)
	if h, _ := r2.control.Health(ctx); len(h) != 1 || h[0].Target != b.addr() {
		t.Fatalf("after a restart: %+v, want %s alone", h, b.addr())
	}
	r2.waitState(t, b.addr(), StateHealthy)
	// A request that hangs holds the drain for the delay, no longer.
	hang := make(chan struct{})
	b.holdOn(hang)
	defer close(hang)
	before := b.served.Load()
	go r2.try()
	waittest.For(t, "the hanging request to reach b", func() bool { return b.served.Load() != before })
	start := time.Now()
	if err := r2.control.Deregister(ctx, b.addr()); err != nil {
		t.Fatal(err)
	}
	r2.waitState(t, b.addr(), StateUnused)
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("drained after %s, want the delay of 500ms", d)
	}
}
