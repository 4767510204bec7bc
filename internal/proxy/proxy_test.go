package proxy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// backend is an app on loopback: GET /up, GET / names it, /slow waits,
// /ws is a WebSocket that stays open until the client leaves.
func backend(t *testing.T, name string, healthy bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if !healthy {
			w.WriteHeader(500)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s xff=%s proto=%s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		fmt.Fprint(w, name+" slow done")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept(r.Header.Get("Sec-WebSocket-Key")))
		brw.Flush()
		io.Copy(io.Discard, brw) // until the client (or the proxy) closes
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func accept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func newProxy(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(s)
	t.Cleanup(front.Close)
	return s, front
}

func route(app, up string, hosts ...string) Route {
	return Route{App: app, Hosts: hosts, Upstream: up, HealthPath: "/up",
		HealthTimeout: Duration{2 * time.Second}, DrainTimeout: Duration{2 * time.Second}}
}

func get(t *testing.T, front *httptest.Server, host, path string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", front.URL+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRouting(t *testing.T) {
	a, b, c := backend(t, "a", true), backend(t, "b", true), backend(t, "c", true)
	s, front := newProxy(t, Options{})
	ctx := context.Background()
	for _, r := range []Route{route("a", addr(a), "a.test"), route("b", addr(b), "*.b.test")} {
		if _, err := s.SetRoute(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	api := route("c", addr(c), "a.test")
	api.PathPrefix = "/api"
	if _, err := s.SetRoute(ctx, api); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		host, path string
		code       int
		prefix     string
	}{
		"exact":           {"a.test", "/", 200, "a "},
		"port ignored":    {"A.TEST:8080", "/", 200, "a "},
		"wildcard":        {"x.b.test", "/", 200, "b "},
		"wildcard base":   {"b.test", "/", 404, "<!doctype"},
		"path prefix":     {"a.test", "/api/users", 200, "c "},
		"prefix boundary": {"a.test", "/apiary", 200, "a "},
		"unknown host":    {"nope.test", "/", 404, "<!doctype"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, front, tt.host, tt.path)
			if code != tt.code || !strings.HasPrefix(body, tt.prefix) {
				t.Errorf("got %d %q, want %d %q...", code, body, tt.code, tt.prefix)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	a := backend(t, "a", true)
	tests := map[string]struct {
		trusted []netip.Prefix
		want    string
	}{
		"untrusted peer": {nil, "a xff=127.0.0.1 proto=http"},
		"trusted peer":   {[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "a xff=203.0.113.9, 127.0.0.1 proto=https"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, front := newProxy(t, Options{TrustedProxies: tt.trusted})
			if _, err := s.SetRoute(context.Background(), route("a", addr(a), "a.test")); err != nil {
				t.Fatal(err)
			}
			_, body := get(t, front, "a.test", "/", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https")
			if body != tt.want {
				t.Errorf("backend saw %q, want %q", body, tt.want)
			}
		})
	}
}

func TestUnhealthyUpstreamNeverServes(t *testing.T) {
	good, bad := backend(t, "good", true), backend(t, "bad", false)
	s, front := newProxy(t, Options{})
	ctx := context.Background()
	if _, err := s.SetRoute(ctx, route("a", addr(good), "a.test")); err != nil {
		t.Fatal(err)
	}
	r := route("a", addr(bad), "a.test")
	r.HealthTimeout = Duration{500 * time.Millisecond}
	if _, err := s.SetRoute(ctx, r); err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("switch to an unhealthy upstream: %v", err)
	}
	if _, body := get(t, front, "a.test", "/"); !strings.HasPrefix(body, "good ") {
		t.Errorf("served %q after a refused switch", body)
	}
}

func TestDownUpstreamIs502Fast(t *testing.T) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{})
	if _, err := s.SetRoute(context.Background(), route("a", addr(a), "a.test")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	start := time.Now()
	code, _ := get(t, front, "a.test", "/")
	if code != http.StatusBadGateway || time.Since(start) > 3*time.Second {
		t.Errorf("got %d after %s, want a quick 502", code, time.Since(start))
	}
}

// TestSwitchUnderLoad switches upstreams while clients send requests
// without pause: none fails, and a slow request on the old upstream
// finishes during the drain.
func TestSwitchUnderLoad(t *testing.T) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{})
	ctx := context.Background()
	if _, err := s.SetRoute(ctx, route("a", addr(old), "a.test")); err != nil {
		t.Fatal(err)
	}
	slow := make(chan string, 1)
	go func() { _, body := get(t, front, "a.test", "/slow"); slow <- body }()
	time.Sleep(100 * time.Millisecond)

	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(5 * time.Second) // bounded in time and count
			for n := 0; n < 100000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				req.Host = "a.test"
				resp, err := front.Client().Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	prev, err := s.SetRoute(ctx, route("a", addr(next), "a.test"))
	if err != nil || prev != addr(old) {
		t.Fatalf("switch: %q, %v", prev, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.WaitDrained(dctx, addr(old)); err != nil {
		t.Error(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if body := <-slow; body != "old slow done" {
		t.Errorf("the in-flight request got %q", body)
	}
	if _, body := get(t, front, "a.test", "/"); !strings.HasPrefix(body, "new ") {
		t.Errorf("after the switch: %q", body)
	}
	if failed.Load() != 0 || served.Load() == 0 {
		t.Errorf("%d requests failed, %d served", failed.Load(), served.Load())
	}
}

// TestWebSocketClosedWith1001 holds a WebSocket across a switch: it stays
// open through the drain timeout, then gets a 1001 close frame.
func TestWebSocketClosedWith1001(t *testing.T) {
	old, next := backend(t, "old", true), backend(t, "new", true)
	s, front := newProxy(t, Options{})
	ctx := context.Background()
	r := route("a", addr(old), "a.test")
	r.DrainTimeout = Duration{700 * time.Millisecond}
	if _, err := s.SetRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
	conn, br := dialWS(t, front, "a.test")
	defer conn.Close()
	r.Upstream = addr(next)
	start := time.Now()
	if _, err := s.SetRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	frame := make([]byte, 4)
	if _, err := io.ReadFull(br, frame); err != nil {
		t.Fatalf("no close frame: %v", err)
	}
	if diff := cmp.Diff(goAwayFrame, frame); diff != "" {
		t.Errorf("close frame (-want +got):\n%s", diff)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("closed after %s, before the drain timeout", d)
	}
}

func dialWS(t *testing.T, front *httptest.Server, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr(front))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

func TestStateSurvivesRestart(t *testing.T) {
	a := backend(t, "a", true)
	state := filepath.Join(t.TempDir(), "state.json")
	s, _ := newProxy(t, Options{StatePath: state})
	if _, err := s.SetRoute(context.Background(), route("a", addr(a), "a.test")); err != nil {
		t.Fatal(err)
	}
	_, front := newProxy(t, Options{StatePath: state})
	if code, body := get(t, front, "a.test", "/"); code != 200 || !strings.HasPrefix(body, "a ") {
		t.Errorf("after restart: %d %q", code, body)
	}
}

func TestControlSocket(t *testing.T) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{})
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
	if _, err := c.SetRoute(ctx, route("a", addr(a), "a.test")); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, front, "a.test", "/"); !strings.HasPrefix(body, "a ") {
		t.Errorf("served %q", body)
	}
	st, err := c.Status(ctx)
	if err != nil || len(st) != 1 || !st[0].Healthy || st[0].Upstream != addr(a) {
		t.Errorf("status %+v, %v", st, err)
	}
	bad := route("b", "127.0.0.1:1", "b.test")
	bad.HealthTimeout = Duration{300 * time.Millisecond}
	if _, err := c.SetRoute(ctx, bad); err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Errorf("unhealthy route over the socket: %v", err)
	}
	if err := c.DeleteRoute(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, front, "a.test", "/"); code != 404 {
		t.Errorf("after delete: %d", code)
	}
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: a")
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if time.Since(start) > 2*time.Second {
		t.Errorf("a client sending headers slowly held the connection %s (%v)", time.Since(start), err)
	}
}

func TestMetrics(t *testing.T) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{})
	s.SetRoute(context.Background(), route("a", addr(a), "a.test"))
	get(t, front, "a.test", "/")
	get(t, front, "x.test", "/")
	s.Status(context.Background())
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`hoist_proxy_requests_total{app="a",code="2xx"} 1`, `hoist_proxy_requests_total{app="-",code="4xx"} 1`,
		`hoist_proxy_request_duration_seconds_count 2`, `hoist_proxy_upstream_healthy{app="a"} 1`, "hoist_proxy_open_websockets 0"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
		}
	}
}

func BenchmarkProxyHTTP(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	s, _ := New(Options{})
	if _, err := s.SetRoute(context.Background(), Route{App: "a", Hosts: []string{"a.test"}, Upstream: addr(up), HealthPath: "/"}); err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(s)
	defer front.Close()
	client := front.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
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
}
