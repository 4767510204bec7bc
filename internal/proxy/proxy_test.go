package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/waittest"
)

// testBackend is an app on loopback: GET /up is its health check, GET /
// names it with the X-Forwarded-* headers it got, /hold answers once the
// test closes release, /ws is a WebSocket that echoes text frames as "NAME:TEXT".
type testBackend struct {
	*httptest.Server
	name    string
	healthy atomic.Bool
	served  atomic.Int64 // requests other than health checks
	// closes receives the close code of each close frame a WebSocket got.
	closes chan uint16
	// slow gets a value when a request to /hold has arrived, so that a
	// test waits for it instead of sleeping.
	slow chan struct{}
	// release, closed, ends the requests to /hold (which otherwise end
	// after 10s).
	release chan struct{}
}

// waitSlow waits until n requests to /hold have arrived at b.
func (b *testBackend) waitSlow(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-b.slow:
		case <-timeout:
			t.Fatalf("%d of %d requests to /hold reached %s within 5s", i, n, b.name)
		}
	}
}

// upstreamSTS is the Strict-Transport-Security a backend sends on /sts.
const upstreamSTS = "max-age=63072000; includeSubDomains"

func backend(t testing.TB, name string, healthy bool, configure ...func(*http.Server)) *testBackend {
	t.Helper()
	b := &testBackend{name: name, closes: make(chan uint16, 16), slow: make(chan struct{}, 64), release: make(chan struct{})}
	b.healthy.Store(healthy)
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if !b.healthy.Load() {
			w.WriteHeader(500)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.served.Add(1)
		fmt.Fprintf(w, "%s xff=%s proto=%s host=%s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	})
	mux.HandleFunc("/sts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", upstreamSTS)
		fmt.Fprint(w, name+" sts")
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		b.served.Add(1)
		select {
		case b.slow <- struct{}{}:
		default: // nobody counts them
		}
		select {
		case <-b.release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, name+" slow done")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		b.served.Add(1)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(r.Header.Get("Sec-WebSocket-Key")))
		brw.Flush()
		for {
			op, payload, err := readFrame(brw.Reader)
			if err != nil {
				return
			}
			if op == 0x8 {
				code := uint16(0)
				if len(payload) >= 2 {
					code = binary.BigEndian.Uint16(payload)
				}
				b.closes <- code
				return
			}
			conn.Write(frame(0x1, []byte(name+":"+string(payload)), false))
		}
	})
	b.Server = httptest.NewUnstartedServer(mux)
	for _, f := range configure {
		f(b.Config)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *testBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func accept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// frame encodes one WebSocket frame; masked as a client sends it.
func frame(op byte, payload []byte, masked bool) []byte {
	out := []byte{0x80 | op}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n < 1<<16:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// readFrame reads one WebSocket frame, unmasking it.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

// frontend is the proxy's public plain-HTTP side, as Run serves it: the
// fast loop and net/http behind it.
type frontend struct {
	URL    string
	pub    *PublicHTTP
	client *http.Client
}

func (f *frontend) Client() *http.Client { return f.client }

func (f *frontend) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.pub.Shutdown(ctx)
	f.client.CloseIdleConnections()
}

// serveFront serves s on a loopback port, with the fast loop in front
// of net/http or not.
func serveFront(t testing.TB, s *Server, tm Timeouts, fast bool) *frontend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontend{URL: "http://" + ln.Addr().String(), pub: NewPublic(s, s, ln, nil, tm, nil, fast),
		client: &http.Client{Transport: &http.Transport{}}}
	go f.pub.Serve()
	return f
}

// bothPaths runs test with the fast loop in front of net/http and with
// net/http alone: the proxy must answer alike.
func bothPaths(t *testing.T, test func(t *testing.T, fast bool)) {
	t.Run("fast loop", func(t *testing.T) { test(t, true) })
	t.Run("net/http", func(t *testing.T) { test(t, false) })
}

func newProxy(t testing.TB, opts Options, fast bool) (*Server, *frontend) {
	t.Helper()
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 100 * time.Millisecond
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	front := serveFront(t, s, Timeouts{}, fast)
	t.Cleanup(func() { front.Close(); s.Close() })
	return s, front
}

func route(app, up string, hosts ...string) hostproto.Route {
	return hostproto.Route{App: app, Hosts: hosts, Upstream: up, HealthPath: "/up",
		HealthTimeout: hostproto.Duration{Duration: 2 * time.Second}, DrainTimeout: hostproto.Duration{Duration: 2 * time.Second}, MaxBodyBytes: DefaultMaxBodyBytes}
}

func setRoute(t testing.TB, s *Server, r hostproto.Route) {
	t.Helper()
	if _, err := s.SetRoute(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, c *http.Client, front *frontend, host, path string, hdr ...string) (int, string) {
	t.Helper()
	code, body, err := tryGet(c, front, host, path, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// tryGet is get for goroutines: it returns its error.
func tryGet(c *http.Client, front *frontend, host, path string, hdr ...string) (int, string, error) {
	req, _ := http.NewRequest("GET", front.URL+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = front.Client()
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestRouting(t *testing.T) { bothPaths(t, testRouting) }

func testRouting(t *testing.T, fast bool) {
	a, b, c, d := backend(t, "a", true), backend(t, "b", true), backend(t, "c", true), backend(t, "d", true)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	setRoute(t, s, route("b", b.addr(), "*.b.test"))
	api := route("c", c.addr(), "a.test", "*.b.test")
	api.PathPrefix = "/api/"
	setRoute(t, s, api)
	deeper := route("d", d.addr(), "a.test")
	deeper.PathPrefix = "/api/v2"
	setRoute(t, s, deeper)
	tests := map[string]struct {
		host, path string
		code       int
		app        string // "" for the 404 page
	}{
		"exact":                 {"a.test", "/", 200, "a"},
		"port and case ignored": {"A.Test:8080", "/x", 200, "a"},
		"trailing dot":          {"a.test.", "/", 200, "a"},
		"wildcard":              {"x.b.test", "/", 200, "b"},
		"wildcard is one label": {"y.x.b.test", "/", 404, ""},
		"wildcard not the base": {"b.test", "/", 404, ""},
		"path prefix":           {"a.test", "/api/users", 200, "c"},
		"path prefix itself":    {"a.test", "/api", 200, "c"},
		"prefix on a boundary":  {"a.test", "/apiary", 200, "a"},
		"longest prefix wins":   {"a.test", "/api/v2/x", 200, "d"},
		"prefix on wildcard":    {"x.b.test", "/api/x", 200, "c"},
		"unknown host":          {"nope.test", "/", 404, ""},
		"IP address":            {"127.0.0.1", "/", 404, ""},
		"exact host beats wild": {"a.test", "/", 200, "a"},
		"query is not the path": {"a.test", "/?p=/api", 200, "a"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, nil, front, tt.host, tt.path)
			app := ""
			if code == 200 {
				app, _, _ = strings.Cut(body, " ")
			} else if !strings.Contains(body, "No application") {
				t.Errorf("404 page: %q", body)
			}
			if diff := cmp.Diff(struct {
				Code int
				App  string
			}{tt.code, tt.app}, struct {
				Code int
				App  string
			}{code, app}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteValidate(t *testing.T) {
	tests := map[string]struct {
		route   hostproto.Route
		wantErr string
		want    hostproto.Route
	}{
		"defaults filled": {
			route: hostproto.Route{App: "a", Hosts: []string{"A.Example.COM."}, Upstream: "127.0.0.1:3000"},
			want: hostproto.Route{App: "a", Hosts: []string{"a.example.com"}, Upstream: "127.0.0.1:3000", HealthPath: "/up",
				HealthTimeout: hostproto.Duration{Duration: DefaultHealthTimeout}, DrainTimeout: hostproto.Duration{Duration: DefaultDrainTimeout}, MaxBodyBytes: DefaultMaxBodyBytes},
		},
		"no app":          {route: hostproto.Route{Hosts: []string{"a.test"}, Upstream: "127.0.0.1:1"}, wantErr: "invalid app"},
		"app with slash":  {route: hostproto.Route{App: "a/b", Hosts: []string{"a.test"}, Upstream: "127.0.0.1:1"}, wantErr: "invalid app"},
		"no hosts":        {route: hostproto.Route{App: "a", Upstream: "127.0.0.1:1"}, wantErr: "no hosts"},
		"host with port":  {route: hostproto.Route{App: "a", Hosts: []string{"a.test:80"}, Upstream: "127.0.0.1:1"}, wantErr: "invalid host"},
		"inner wildcard":  {route: hostproto.Route{App: "a", Hosts: []string{"a.*.test"}, Upstream: "127.0.0.1:1"}, wantErr: "invalid host"},
		"bare wildcard":   {route: hostproto.Route{App: "a", Hosts: []string{"*"}, Upstream: "127.0.0.1:1"}, wantErr: "invalid host"},
		"relative prefix": {route: hostproto.Route{App: "a", Hosts: []string{"a.test"}, PathPrefix: "api", Upstream: "127.0.0.1:1"}, wantErr: "must start with /"},
		"no port":         {route: hostproto.Route{App: "a", Hosts: []string{"a.test"}, Upstream: "127.0.0.1"}, wantErr: "not host:port"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := tt.route
			err := validateRoute(&r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteConflict(t *testing.T) {
	a, b := backend(t, "a", true), backend(t, "b", true)
	s, _ := newProxy(t, Options{}, true)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	if _, err := s.SetRoute(context.Background(), route("b", b.addr(), "A.test")); err == nil || !strings.Contains(err.Error(), "already served by app a") {
		t.Errorf("a second app on the same host and prefix: %v", err)
	}
	other := route("b", b.addr(), "a.test")
	other.PathPrefix = "/b"
	setRoute(t, s, other) // another prefix is fine
}

func TestForwardedHeaders(t *testing.T) { bothPaths(t, testForwardedHeaders) }

func testForwardedHeaders(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := map[string]struct {
		trusted []netip.Prefix
		sent    []string
		want    string
	}{
		"untrusted peer, forged headers": {nil,
			[]string{"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.test"},
			"a xff=127.0.0.1 proto=http host=a.test"},
		"untrusted peer, no headers": {nil, nil, "a xff=127.0.0.1 proto=http host=a.test"},
		"trusted peer": {loopback,
			[]string{"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "www.test"},
			"a xff=203.0.113.9, 127.0.0.1 proto=https host=www.test"},
		"trusted peer, nonsense proto": {loopback,
			[]string{"X-Forwarded-Proto", "gopher"},
			"a xff=127.0.0.1 proto=http host=a.test"},
		"other trusted network": {[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			[]string{"X-Forwarded-For", "203.0.113.9"},
			"a xff=127.0.0.1 proto=http host=a.test"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, front := newProxy(t, Options{TrustedProxies: tt.trusted}, fast)
			setRoute(t, s, route("a", a.addr(), "a.test"))
			_, body := get(t, nil, front, "a.test", "/", tt.sent...)
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("backend saw (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUpstreamDown: an upstream that stops answers 502 at once, then
// 503 once its health checks have failed; it recovers by itself.
func TestUpstreamDown(t *testing.T) { bothPaths(t, testUpstreamDown) }

func testUpstreamDown(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{HealthInterval: 50 * time.Millisecond}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	a.healthy.Store(false)
	ln := a.Listener
	a.Config.SetKeepAlivesEnabled(false)
	ln.Close() // refuses connections from now on
	a.CloseClientConnections()

	start := time.Now()
	code, _ := get(t, nil, front, "a.test", "/")
	if code != http.StatusBadGateway || time.Since(start) > time.Second {
		t.Errorf("got %d after %s, want a quick 502", code, time.Since(start))
	}
	waittest.Within(t, 5*time.Second, "the health checks to find the upstream down", func() bool { return !s.table.Load().byApp("a").up.healthy.Load() })
	start = time.Now()
	code, _ = get(t, nil, front, "a.test", "/")
	if code != http.StatusServiceUnavailable || time.Since(start) > time.Second {
		t.Errorf("got %d after %s, want a quick 503 once unhealthy", code, time.Since(start))
	}
	st := s.Status(context.Background())
	if len(st) != 1 || st[0].Healthy || st[0].HealthError == "" {
		t.Errorf("status: %+v", st)
	}
}

// TestUpstreamHangs: an upstream that accepts and never answers gets a
// 504 after the header timeout, not a hang.
func TestUpstreamHangs(t *testing.T) { bothPaths(t, testUpstreamHangs) }

func testUpstreamHangs(t *testing.T, fast bool) {
	block := make(chan struct{})
	defer close(block)
	a := backend(t, "a", true, func(srv *http.Server) {
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/up" {
				return
			}
			<-block
		})
	})
	s, front := newProxy(t, Options{UpstreamHeaderTimeout: 300 * time.Millisecond}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	start := time.Now()
	code, _ := get(t, nil, front, "a.test", "/")
	if code != http.StatusGatewayTimeout || time.Since(start) > 2*time.Second {
		t.Errorf("got %d after %s, want 504 after about 300ms", code, time.Since(start))
	}
}

func TestUnhealthySwitchRefused(t *testing.T) { bothPaths(t, testUnhealthySwitchRefused) }

func testUnhealthySwitchRefused(t *testing.T, fast bool) {
	good, bad := backend(t, "good", true), backend(t, "bad", false)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", good.addr(), "a.test"))
	r := route("a", bad.addr(), "a.test")
	r.HealthTimeout = hostproto.Duration{Duration: 500 * time.Millisecond}
	start := time.Now()
	_, err := s.SetRoute(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "not healthy") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("switch to an unhealthy upstream: %v", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("the refusal took %s, want about the health timeout", d)
	}
	for range 20 {
		if _, body := get(t, nil, front, "a.test", "/"); !strings.HasPrefix(body, "good ") {
			t.Fatalf("served %q after a refused switch", body)
		}
	}
	if n := bad.served.Load(); n != 0 {
		t.Errorf("the unhealthy upstream got %d requests", n)
	}
	if got := s.Routes()[0].Upstream; got != good.addr() {
		t.Errorf("route now points at %s", got)
	}
	down := route("b", "127.0.0.1:1", "b.test")
	down.HealthTimeout = hostproto.Duration{Duration: 300 * time.Millisecond}
	if _, err := s.SetRoute(context.Background(), down); err == nil {
		t.Error("a route to a closed port went live")
	}
	if code, _ := get(t, nil, front, "b.test", "/"); code != 404 {
		t.Errorf("refused new route answers %d", code)
	}
}

// load sends GET / to a.test from workers goroutines until stop is
// closed, bounded by time and count, and counts failures.
func load(t *testing.T, front *frontend, workers int, stop chan struct{}) (wait func() (served, failed int64, firstErr string)) {
	var served, failed atomic.Int64
	var mu sync.Mutex
	var first string
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			deadline := time.Now().Add(10 * time.Second)
			for n := 0; n < 50000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				req.Host = "a.test"
				resp, err := client.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if resp != nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok = ok && (bytes.HasPrefix(b, []byte("old ")) || bytes.HasPrefix(b, []byte("new ")))
					if !ok && err == nil {
						err = fmt.Errorf("%s: %q", resp.Status, b)
					}
				}
				if ok {
					served.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				if first == "" {
					first = fmt.Sprint(err)
				}
				mu.Unlock()
			}
		})
	}
	return func() (int64, int64, string) {
		wg.Wait()
		client.CloseIdleConnections()
		return served.Load(), failed.Load(), first
	}
}

// TestSwitchUnderLoad switches upstreams while clients send requests
// without pause: none fails, a slow request on the old upstream
// finishes during the drain, and afterwards only the new one serves.
func TestSwitchUnderLoad(t *testing.T) { bothPaths(t, testSwitchUnderLoad) }

func testSwitchUnderLoad(t *testing.T, fast bool) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{}, fast)
	ctx := context.Background()
	setRoute(t, s, route("a", old.addr(), "a.test"))
	slow := make(chan string, 1)
	go func() {
		_, body, err := tryGet(nil, front, "a.test", "/hold")
		if err != nil {
			body = err.Error()
		}
		slow <- body
	}()
	old.waitSlow(t, 1)

	stop := make(chan struct{})
	wait := load(t, front, 4, stop)
	// Load before the switch, and after it on the new upstream, while
	// the held request is in flight on the old one.
	before := old.served.Load()
	waittest.For(t, "20 requests served by the old upstream", func() bool { return old.served.Load() >= before+20 })
	prev, err := s.SetRoute(ctx, route("a", next.addr(), "a.test"))
	if err != nil || prev != old.addr() {
		t.Fatalf("switch: %q, %v", prev, err)
	}
	waittest.For(t, "20 requests served by the new upstream", func() bool { return next.served.Load() >= 20 })
	if st := s.Status(ctx); len(st) != 1 || len(st[0].Draining) != 1 || st[0].Draining[0].InFlight != 1 {
		t.Errorf("status during the drain: %+v, want the held request in flight on the old upstream", st)
	}
	close(old.release) // the held request finishes during the drain
	close(stop)
	served, failed, first := wait()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.WaitDrained(dctx, old.addr()); err != nil {
		t.Error(err)
	}
	if body := <-slow; body != "old slow done" {
		t.Errorf("the in-flight request got %q", body)
	}
	oldServed := old.served.Load()
	for range 10 {
		if _, body := get(t, nil, front, "a.test", "/"); !strings.HasPrefix(body, "new ") {
			t.Errorf("after the switch: %q", body)
		}
	}
	if old.served.Load() != oldServed {
		t.Error("the old upstream still gets requests after the switch")
	}
	if failed != 0 || served == 0 || next.served.Load() == 0 {
		t.Errorf("%d requests failed (first: %s), %d served, %d by the new upstream", failed, first, served, next.served.Load())
	}
	t.Logf("%d requests served across the switch, %d failed", served, failed)
}

// TestDrainWaitsForSlowRequests: WaitDrained returns only once the
// requests in flight on the old upstream are done. They are held until
// the test lets them go, so that what is in flight is not a matter of
// timing.
func TestDrainWaitsForSlowRequests(t *testing.T) { bothPaths(t, testDrainWaitsForSlowRequests) }

func testDrainWaitsForSlowRequests(t *testing.T, fast bool) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{}, fast)
	// A drain timeout far beyond the test's wait, so that only the
	// release ends the requests.
	r := route("a", old.addr(), "a.test")
	r.DrainTimeout = hostproto.Duration{Duration: time.Minute}
	setRoute(t, s, r)
	var wg sync.WaitGroup
	bodies := make([]string, 3)
	for i := range bodies {
		wg.Go(func() {
			_, body, err := tryGet(nil, front, "a.test", "/hold")
			if err != nil {
				body = err.Error()
			}
			bodies[i] = body
		})
	}
	old.waitSlow(t, len(bodies))
	r.Upstream = next.addr()
	setRoute(t, s, r)
	st := s.Status(context.Background())
	if len(st) != 1 || len(st[0].Draining) != 1 || st[0].Draining[0].InFlight != 3 {
		t.Errorf("status during the drain: %+v", st)
	}
	// While the requests are held, WaitDrained waits: it returns only
	// when its context ends.
	held, cancelHeld := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelHeld()
	if err := s.WaitDrained(held, old.addr()); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 requests in flight") {
		t.Errorf("WaitDrained with 3 requests held: %v, want it still draining them", err)
	}
	close(old.release)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.WaitDrained(ctx, old.addr()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if diff := cmp.Diff([]string{"old slow done", "old slow done", "old slow done"}, bodies); diff != "" {
		t.Errorf("in-flight requests (-want +got):\n%s", diff)
	}
}

// TestDrainTimeoutReported: a request longer than the drain timeout is
// reported by WaitDrained.
func TestDrainTimeoutReported(t *testing.T) { bothPaths(t, testDrainTimeoutReported) }

func testDrainTimeoutReported(t *testing.T, fast bool) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{}, fast)
	r := route("a", old.addr(), "a.test")
	r.DrainTimeout = hostproto.Duration{Duration: 100 * time.Millisecond}
	setRoute(t, s, r)
	done := make(chan struct{})
	go func() { tryGet(nil, front, "a.test", "/hold"); close(done) }()
	old.waitSlow(t, 1)
	r.Upstream = next.addr()
	setRoute(t, s, r)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// The request is held past the drain timeout, until after this.
	if err := s.WaitDrained(ctx, old.addr()); err == nil || !strings.Contains(err.Error(), "1 requests were still in flight") {
		t.Errorf("WaitDrained: %v", err)
	}
	close(old.release)
	<-done
}

// dialWS opens a WebSocket to /ws through the proxy.
func dialWS(t testing.TB, front string, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != accept("dGhlIHNhbXBsZSBub25jZQ==") {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, br
}

func echo(t *testing.T, conn net.Conn, br *bufio.Reader, msg string) string {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(frame(0x1, []byte(msg), true)); err != nil {
		t.Fatal(err)
	}
	op, p, err := readFrame(br)
	if err != nil || op != 0x1 {
		t.Fatalf("echo: op %d %q %v", op, p, err)
	}
	return string(p)
}

// TestWebSocketGoingAway holds a WebSocket across a switch: it keeps
// working through the drain timeout, then both sides get a close frame
// with 1001 Going Away, and the connection ends. New WebSockets go to
// the new upstream.
func TestWebSocketGoingAway(t *testing.T) { bothPaths(t, testWebSocketGoingAway) }

func testWebSocketGoingAway(t *testing.T, fast bool) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{}, fast)
	r := route("a", old.addr(), "a.test")
	r.DrainTimeout = hostproto.Duration{Duration: 700 * time.Millisecond}
	setRoute(t, s, r)
	conn, br := dialWS(t, addrOf(front.URL), "a.test")
	defer conn.Close()
	if got := echo(t, conn, br, "hi"); got != "old:hi" {
		t.Fatalf("echo %q", got)
	}
	if st := s.Status(context.Background()); st[0].OpenWebSockets != 1 {
		t.Errorf("status: %d open WebSockets", st[0].OpenWebSockets)
	}
	r.Upstream = next.addr()
	start := time.Now()
	setRoute(t, s, r)
	if st := s.Status(context.Background()); len(st) != 1 || len(st[0].Draining) != 1 || st[0].Draining[0].OpenWebSockets != 1 {
		t.Fatalf("status after the switch: %+v, want the old upstream draining with its WebSocket", st)
	}
	if got := echo(t, conn, br, "still"); got != "old:still" {
		t.Errorf("during the drain: %q", got)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	op, payload, err := readFrame(br)
	if err != nil {
		t.Fatalf("no close frame: %v", err)
	}
	if d := time.Since(start); d < 650*time.Millisecond {
		t.Errorf("closed after %s, before the drain timeout", d)
	}
	if diff := cmp.Diff([]byte{0x03, 0xe9}, payload); op != 0x8 || diff != "" {
		t.Errorf("close frame op %d (-want +got):\n%s", op, diff)
	}
	conn.Write(frame(0x8, payload, true)) // the client's answer
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the close handshake: %v, want EOF", err)
	}
	select {
	case code := <-old.closes:
		if code != 1001 {
			t.Errorf("the old upstream got close code %d", code)
		}
	case <-time.After(3 * time.Second):
		t.Error("the old upstream got no close frame")
	}
	conn2, br2 := dialWS(t, addrOf(front.URL), "a.test")
	defer conn2.Close()
	if got := echo(t, conn2, br2, "hi"); got != "new:hi" {
		t.Errorf("new WebSocket: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.WaitDrained(ctx, old.addr()); err != nil {
		t.Error(err)
	}
}

// TestWebSocketRefused: an upstream that answers the upgrade with
// something else passes its answer on.
func TestWebSocketRefused(t *testing.T) { bothPaths(t, testWebSocketRefused) }

func testWebSocketRefused(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	conn, err := net.Dial("tcp", addrOf(front.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /nows HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "a ") {
		t.Errorf("got %s %q", resp.Status, b)
	}
}

// TestGoAwayBetweenFrames: a close frame is never written inside a
// frame in progress; it follows the frame's end.
func TestGoAwayBetweenFrames(t *testing.T) {
	cl, clPeer := net.Pipe()
	bk, bkPeer := net.Pipe()
	u := &upstream{ws: map[*wsConn]struct{}{}}
	c := newWSConn(cl, bk, u, &appMetrics{}, true, 0)
	u.register(c)
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(clPeer); got <- b }()
	toBackend := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(bkPeer); toBackend <- b }()

	msg := frame(0x1, []byte("hello world"), false)
	if err := c.forward(0, msg[:7]); err != nil { // part of a frame
		t.Fatal(err)
	}
	went := make(chan struct{})
	go func() { c.goAway(); close(went) }()
	// goAway has found the frame unfinished and left the close frame
	// for its end: the claim under test, whatever the goroutines' pace.
	waittest.For(t, "goAway to want a close frame after the frame in progress", func() bool {
		d := &c.dirs[toClient]
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.want && !d.sent
	})
	if err := c.forward(0, msg[7:]); err != nil {
		t.Fatal(err)
	}
	<-went
	want := append(append([]byte{}, msg...), closeGoingAway...)
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("client got (-want +got):\n%s", diff)
	}
	b := <-toBackend
	op, p, err := readFrame(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || op != 0x8 || binary.BigEndian.Uint16(p) != 1001 {
		t.Errorf("upstream got %x: op %d %x %v", b, op, p, err)
	}
}

func TestFrameScanner(t *testing.T) {
	long := frame(0x2, bytes.Repeat([]byte("x"), 300), true)
	huge := frame(0x2, bytes.Repeat([]byte("y"), 70000), false)
	tests := map[string]struct {
		chunks [][]byte
		// ends are the offsets, in the whole stream, where frames end.
		ends []int
	}{
		"one small frame":        {[][]byte{frame(0x1, []byte("hi"), false)}, []int{4}},
		"empty frame":            {[][]byte{{0x89, 0x00}}, []int{2}},
		"two frames in a chunk":  {[][]byte{append(frame(0x1, []byte("a"), false), frame(0x1, []byte("bc"), false)...)}, []int{3, 7}},
		"masked, 16-bit length":  {[][]byte{long[:3], long[3:10], long[10:]}, []int{len(long)}},
		"64-bit length, byte by": {split(huge, 1000), []int{len(huge)}},
		"header split":           {[][]byte{{0x81}, {0x82, 1, 2}, {3, 4, 'a' ^ 1, 'b' ^ 2}}, []int{8}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var f frameScanner
			var ends []int
			off := 0
			for _, c := range tt.chunks {
				for len(c) > 0 {
					n, ended := f.scan(c)
					off += n
					c = c[n:]
					if ended {
						ends = append(ends, off)
						if !f.boundary() {
							t.Errorf("frame ended at %d but not at a boundary", off)
						}
					}
				}
			}
			if diff := cmp.Diff(tt.ends, ends); diff != "" {
				t.Errorf("frame ends (-want +got):\n%s", diff)
			}
		})
	}
}

func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func addrOf(url string) string { return strings.TrimPrefix(url, "http://") }

func TestStateSurvivesRestart(t *testing.T) { bothPaths(t, testStateSurvivesRestart) }

func testStateSurvivesRestart(t *testing.T, fast bool) {
	a, b := backend(t, "a", true), backend(t, "b", true)
	state := filepath.Join(t.TempDir(), "proxy", "state.json")
	s, _ := newProxy(t, Options{StatePath: state}, fast)
	ra := route("a", a.addr(), "a.test")
	rb := route("b", b.addr(), "b.test")
	rb.PathPrefix = "/b"
	setRoute(t, s, ra)
	setRoute(t, s, rb)
	setRoute(t, s, route("c", b.addr(), "c.test"))
	if err := s.DeleteRoute("c"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(state))
	if len(entries) != 1 {
		t.Errorf("state directory holds %d files, want only state.json", len(entries))
	}
	var saved []hostproto.Route
	raw, _ := os.ReadFile(state)
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]hostproto.Route{ra, rb}, saved); diff != "" {
		t.Errorf("state file (-want +got):\n%s", diff)
	}

	s2, front := newProxy(t, Options{StatePath: state}, fast)
	if diff := cmp.Diff([]hostproto.Route{ra, rb}, s2.Routes()); diff != "" {
		t.Errorf("restored routes (-want +got):\n%s", diff)
	}
	if code, body := get(t, nil, front, "a.test", "/"); code != 200 || !strings.HasPrefix(body, "a ") {
		t.Errorf("after restart: %d %q", code, body)
	}
	if code, body := get(t, nil, front, "b.test", "/b/x"); code != 200 || !strings.HasPrefix(body, "b ") {
		t.Errorf("after restart: %d %q", code, body)
	}
	os.WriteFile(state, []byte("{not json"), 0o644)
	if _, err := New(Options{StatePath: state}); err == nil {
		t.Error("a corrupt state file was accepted")
	}
}

func TestControlSocket(t *testing.T) { bothPaths(t, testControlSocket) }

func testControlSocket(t *testing.T, fast bool) {
	a, b := backend(t, "a", true), backend(t, "b", true)
	s, front := newProxy(t, Options{}, fast)
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctl := &http.Server{Handler: s.ControlHandler()}
	go ctl.Serve(ln)
	defer ctl.Close()
	c := &Client{Socket: sock}
	ctx := context.Background()
	prev, err := c.SetRoute(ctx, route("a", a.addr(), "a.test"))
	if err != nil || prev != "" {
		t.Fatalf("SetRoute: %q %v", prev, err)
	}
	if _, body := get(t, nil, front, "a.test", "/"); !strings.HasPrefix(body, "a ") {
		t.Errorf("served %q", body)
	}
	prev, err = c.SetRoute(ctx, route("a", b.addr(), "a.test"))
	if err != nil || prev != a.addr() {
		t.Fatalf("switch: %q %v", prev, err)
	}
	if err := c.WaitDrained(ctx, a.addr(), 5*time.Second); err != nil {
		t.Error(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []hostproto.RouteStatus{{Route: route("a", b.addr(), "a.test"), Healthy: true}}
	if diff := cmp.Diff(want, st, cmpopts.IgnoreFields(hostproto.RouteStatus{}, "CheckedAt")); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	routes, err := c.Routes(ctx)
	if diff := cmp.Diff([]hostproto.Route{route("a", b.addr(), "a.test")}, routes); err != nil || diff != "" {
		t.Errorf("routes %v (-want +got):\n%s", err, diff)
	}
	bad := route("b", "127.0.0.1:1", "b.test")
	bad.HealthTimeout = hostproto.Duration{Duration: 300 * time.Millisecond}
	if _, err := c.SetRoute(ctx, bad); err == nil || !strings.Contains(err.Error(), "not healthy") || !strings.Contains(err.Error(), "unchanged") {
		t.Errorf("unhealthy route over the socket: %v", err)
	}
	if _, err := c.SetRoute(ctx, hostproto.Route{App: "x"}); err == nil || !strings.Contains(err.Error(), "no hosts") {
		t.Errorf("invalid route: %v", err)
	}
	if err := c.DeleteRoute(ctx, "nope"); err == nil {
		t.Error("deleting a route that does not exist succeeded")
	}
	// A raw request with an unknown field is refused with a reason.
	hc := c.http()
	resp, err := hc.Post("http://proxy/v1/routes/a", "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST on a route: %s", resp.Status)
		}
	}
	req, _ := http.NewRequest("PUT", "http://proxy/v1/routes/a", strings.NewReader(`{"hosts":["a.test"],"upstraem":"x"}`))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "upstraem") {
		t.Errorf("misspelt field: %s %s", resp.Status, body)
	}
	if err := c.DeleteRoute(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, nil, front, "a.test", "/"); code != 404 {
		t.Errorf("after delete: %d", code)
	}
}

// TestSlowloris: a client that sends its headers slowly is cut off by
// the read-header timeout, and a head over the limit is refused.
func TestSlowloris(t *testing.T) { bothPaths(t, testSlowloris) }

func testSlowloris(t *testing.T, fast bool) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	front := serveFront(t, s, Timeouts{ReadHeader: 300 * time.Millisecond, MaxHeaderBytes: 4 << 10}, fast)
	defer front.Close()
	addr := strings.TrimPrefix(front.URL, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\n")
	var werr error
	for i := 0; i < 40 && werr == nil; i++ {
		_, werr = fmt.Fprintf(conn, "X-%d: y\r\n", i)
		// The pause is the input: a header line every 100ms, a head
		// that would take 4s, cut off at the 300ms read-header timeout
		// (the bound on the time below).
		time.Sleep(100 * time.Millisecond)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	io.ReadAll(conn)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a client sending headers slowly held the connection %s (write error %v)", d, werr)
	}

	big, _ := http.NewRequest("GET", front.URL+"/", nil)
	big.Header.Set("X-Big", strings.Repeat("x", 8<<10))
	resp, err := http.DefaultClient.Do(big)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("an 8 KiB header: %s", resp.Status)
	}
}

func TestMetricsAndAccessLog(t *testing.T) { bothPaths(t, testMetricsAndAccessLog) }

func testMetricsAndAccessLog(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	var logBuf syncBuffer
	s, front := newProxy(t, Options{AccessLog: slog.New(slog.NewJSONHandler(&logBuf, nil))}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	get(t, nil, front, "a.test", "/")
	get(t, nil, front, "a.test", "/")
	get(t, nil, front, "x.test", "/")
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`hoist_proxy_requests_total{app="a",code="2xx"} 2`,
		`hoist_proxy_requests_total{app="-",code="4xx"} 1`,
		`hoist_proxy_request_duration_seconds_count{app="a"} 2`,
		`hoist_proxy_request_duration_seconds_bucket{app="a",le="+Inf"} 2`,
		`hoist_proxy_upstream_healthy{app="a",upstream="` + a.addr() + `"} 1`,
		`hoist_proxy_open_websockets{app="a"} 0`,
		`hoist_proxy_in_flight_requests{app="a"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(logBuf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d access log lines", len(lines))
	}
	got := map[string]any{"app": lines[2]["app"], "status": lines[2]["status"], "host": lines[2]["host"], "method": lines[2]["method"]}
	if diff := cmp.Diff(map[string]any{"app": "-", "status": 404.0, "host": "x.test", "method": "GET"}, got); diff != "" {
		t.Errorf("access log (-want +got):\n%s", diff)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStaleConnectionRetried: a GET sent on a reused upstream
// connection that the upstream closes without answering (it had closed
// it while idle, and the proxy had not seen it yet) is sent again on a
// new connection, and the client never knows. The upstream here closes
// each connection on its second request, so that every reuse meets a
// stale connection, whatever the pace of the goroutines.
func TestStaleConnectionRetried(t *testing.T) { bothPaths(t, testStaleConnectionRetried) }

func testStaleConnectionRetried(t *testing.T, fast bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns, dropped, answered atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if n == 1 && req.URL.Path != "/up" {
						dropped.Add(1)
						return // closed with the request unanswered
					}
					if req.URL.Path != "/up" {
						answered.Add(1)
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	s, front := newProxy(t, Options{HealthInterval: time.Hour}, fast)
	setRoute(t, s, route("a", ln.Addr().String(), "a.test"))
	const requests = 6
	for i := range requests {
		if code, body := get(t, nil, front, "a.test", "/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if dropped.Load() == 0 {
		t.Fatalf("no request met a stale connection (%d connections): the proxy reused none", conns.Load())
	}
	if answered.Load() != requests {
		t.Errorf("the upstream answered %d requests, want %d (%d dropped on stale connections and sent again)", answered.Load(), requests, dropped.Load())
	}
	t.Logf("%d requests, %d met a stale connection, %d upstream connections", requests, dropped.Load(), conns.Load())
}

// TestPooledConnections: keep-alive connections to the upstream are
// reused, and one the upstream closed while idle is replaced without
// failing the request.
func TestPooledConnections(t *testing.T) { bothPaths(t, testPooledConnections) }

func testPooledConnections(t *testing.T, fast bool) {
	var conns atomic.Int64
	a := backend(t, "a", true, func(srv *http.Server) {
		srv.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	})
	s, front := newProxy(t, Options{HealthInterval: time.Hour}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	before := conns.Load()
	for range 20 {
		if code, _ := get(t, nil, front, "a.test", "/"); code != 200 {
			t.Fatal(code)
		}
	}
	if n := conns.Load() - before; n > 2 {
		t.Errorf("20 sequential requests opened %d upstream connections", n)
	}
	// The upstream drops its idle connections. Whether the proxy sees
	// the close before its next request or only on that request's
	// connection, the request succeeds; TestStaleConnectionRetried
	// takes the second path every time.
	a.CloseClientConnections()
	for range 5 {
		if code, body := get(t, nil, front, "a.test", "/"); code != 200 {
			t.Errorf("after the upstream closed idle connections: %d %q", code, body)
		}
	}
	// A request with a body goes through too.
	req, _ := http.NewRequest("POST", front.URL+"/", strings.NewReader("payload"))
	req.Host = "a.test"
	resp, err := front.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("POST: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

func TestShutdownClosesWebSockets(t *testing.T) { bothPaths(t, testShutdownClosesWebSockets) }

func testShutdownClosesWebSockets(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	conn, br := dialWS(t, addrOf(front.URL), "a.test")
	defer conn.Close()
	s.Close()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	op, p, err := readFrame(br)
	if err != nil || op != 0x8 || binary.BigEndian.Uint16(p) != 1001 {
		t.Errorf("on shutdown: op %d %x %v", op, p, err)
	}
	if _, err := s.SetRoute(context.Background(), route("a", a.addr(), "a.test")); err == nil {
		t.Error("SetRoute after Close succeeded")
	}
}

// BenchmarkProxyHTTP is a plain GET through the proxy, the hot path:
// the fast loop's, and net/http's.
func BenchmarkProxyHTTP(b *testing.B) {
	b.Run("fast loop", func(b *testing.B) { benchmarkProxyHTTP(b, true) })
	b.Run("net/http", func(b *testing.B) { benchmarkProxyHTTP(b, false) })
}

func benchmarkProxyHTTP(b *testing.B, fast bool) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	s, err := New(Options{HealthInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := hostproto.Route{App: "a", Hosts: []string{"a.test"}, Upstream: strings.TrimPrefix(up.URL, "http://"), HealthPath: "/"}
	if _, err := s.SetRoute(context.Background(), r); err != nil {
		b.Fatal(err)
	}
	front := serveFront(b, s, Timeouts{}, fast)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer() // not the servers' start
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "a.test"
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer() // nor their shutdown
}

func BenchmarkLookup(b *testing.B) {
	var entries []*entry
	s := &Server{metrics: newMetrics()}
	for i := range 50 {
		r := hostproto.Route{App: fmt.Sprint("app", i), Hosts: []string{fmt.Sprintf("app%d.example.com", i), fmt.Sprintf("*.app%d.example.org", i)}, PathPrefix: "/x"}
		entries = append(entries, s.newEntry(r, nil))
	}
	t := newTable(entries)
	b.ReportAllocs()
	for b.Loop() {
		if t.lookup(hostOf("App42.example.com:443"), "/x/y") == nil || t.lookup("a.app7.example.org", "/x") == nil {
			b.Fatal("no match")
		}
	}
}
