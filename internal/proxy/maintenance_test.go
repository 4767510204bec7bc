package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// TestMaintenance: a route in maintenance answers 503 with its message
// and Retry-After on both paths, while its upstream keeps running and is
// never asked; off, it serves again at once. It survives a restart.
func TestMaintenance(t *testing.T) { bothPaths(t, testMaintenance) }

func testMaintenance(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	state := filepath.Join(t.TempDir(), "state.json")
	s, front := newProxy(t, Options{StatePath: state}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	if code, _ := get(t, nil, front, "a.test", "/"); code != http.StatusOK {
		t.Fatalf("before: %d", code)
	}
	m := &hostproto.Maintenance{Message: "Back at <10:00>", RetryAfter: hostproto.Duration{Duration: 90 * time.Second}}
	if err := s.SetMaintenance("a", m); err != nil {
		t.Fatal(err)
	}
	served := a.served.Load()
	for i := 0; i < 3; i++ {
		resp := do(t, front, "a.test", "/anything")
		if resp.code != http.StatusServiceUnavailable || resp.retryAfter != "90" || !strings.Contains(resp.body, "Back at &lt;10:00&gt;") {
			t.Fatalf("in maintenance: %d, Retry-After %q, %q", resp.code, resp.retryAfter, resp.body)
		}
	}
	if a.served.Load() != served {
		t.Errorf("the upstream was asked %d times during maintenance", a.served.Load()-served)
	}
	if st := s.Status(context.Background()); len(st) != 1 || !st[0].Healthy || st[0].Maintenance == nil {
		t.Errorf("status during maintenance: %+v", st)
	}

	// Kept across a restart, from the saved state.
	s2, front2 := newProxy(t, Options{StatePath: state}, fast)
	if resp := do(t, front2, "a.test", "/"); resp.code != http.StatusServiceUnavailable {
		t.Errorf("after a restart: %d, want maintenance kept", resp.code)
	}
	if err := s2.SetMaintenance("a", nil); err != nil {
		t.Fatal(err)
	}
	if resp := do(t, front2, "a.test", "/"); resp.code != http.StatusOK || resp.retryAfter != "" {
		t.Errorf("off: %d, Retry-After %q", resp.code, resp.retryAfter)
	}
	if err := s.SetMaintenance("nope", m); err == nil || !strings.Contains(err.Error(), "no route for nope") {
		t.Errorf("maintenance of an app without a route: %v", err)
	}
	if err := s.SetMaintenance("a", &hostproto.Maintenance{Message: strings.Repeat("x", MaxMessageBytes+1)}); err == nil {
		t.Error("a message over the limit was taken")
	}
}

// TestAppPages: an app's own pages replace the proxy's 502, 503 and 504
// for it, on both paths, and its 503 page carries the maintenance
// message; other apps keep the proxy's.
func TestAppPages(t *testing.T) { bothPaths(t, testAppPages) }

func testAppPages(t *testing.T, fast bool) {
	a, b := backend(t, "a", true), backend(t, "b", true)
	s, front := newProxy(t, Options{HealthInterval: 50 * time.Millisecond}, fast)
	r := route("a", a.addr(), "a.test")
	r.Pages = map[int]string{
		http.StatusBadGateway:         "<p>a's own 502</p>",
		http.StatusServiceUnavailable: "<p>a is resting: {{message}}</p>",
	}
	setRoute(t, s, r)
	setRoute(t, s, route("b", b.addr(), "b.test"))
	if err := s.SetMaintenance("a", &hostproto.Maintenance{Message: "migrating"}); err != nil {
		t.Fatal(err)
	}
	if resp := do(t, front, "a.test", "/"); resp.code != 503 || resp.body != "<p>a is resting: migrating</p>" || resp.retryAfter != "300" {
		t.Errorf("a's maintenance page: %d %q, Retry-After %q", resp.code, resp.body, resp.retryAfter)
	}
	if err := s.SetMaintenance("a", nil); err != nil {
		t.Fatal(err)
	}
	// The upstream goes away: a's 502 is its own, b's the proxy's.
	for _, be := range []*testBackend{a, b} {
		be.Config.SetKeepAlivesEnabled(false)
		be.Listener.Close()
		be.CloseClientConnections()
	}
	if resp := do(t, front, "a.test", "/"); resp.code != 502 || resp.body != "<p>a's own 502</p>" {
		t.Errorf("a's 502: %d %q", resp.code, resp.body)
	}
	if resp := do(t, front, "b.test", "/"); resp.code != 502 || !strings.Contains(resp.body, "502 Bad Gateway") {
		t.Errorf("b's 502: %d %q", resp.code, resp.body)
	}
	bad := route("c", b.addr(), "c.test")
	bad.Pages = map[int]string{404: "x"}
	if err := validateRoute(&bad); err == nil || !strings.Contains(err.Error(), "not 404") {
		t.Errorf("a page for 404: %v", err)
	}
}

type pageAnswer struct {
	code             int
	body, retryAfter string
}

// do sends one request on a fresh connection, so that what one answer
// does to a connection never decides the next.
func do(t *testing.T, front *frontend, host, path string) pageAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", front.URL+path, nil)
	req.Host = host
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return pageAnswer{resp.StatusCode, string(b), resp.Header.Get("Retry-After")}
}
