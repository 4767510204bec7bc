package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// TestBalancerCheck: a balancer that checks a host's proxy by address
// learns each app's health there, on both paths, and the check never
// reaches the app.
func TestBalancerCheck(t *testing.T) { bothPaths(t, testBalancerCheck) }

func testBalancerCheck(t *testing.T, fast bool) {
	a, b := backend(t, "a", true), backend(t, "b", false)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	ra := route("b", b.addr(), "b.test")
	b.healthy.Store(true)
	setRoute(t, s, ra)
	b.healthy.Store(false)
	waitUnhealthy(t, s, "b")
	tests := map[string]struct {
		host, path string
		code       int
	}{
		"healthy app, by address":   {"10.0.1.5", BalancerCheckPath("a"), http.StatusOK},
		"unhealthy app":             {"10.0.1.5:80", BalancerCheckPath("b"), http.StatusServiceUnavailable},
		"no such app":               {"10.0.1.5", BalancerCheckPath("c"), http.StatusNotFound},
		"by the app's name":         {"a.test", BalancerCheckPath("a"), http.StatusOK},
		"other paths are not found": {"10.0.1.5", "/up", http.StatusNotFound},
	}
	served := a.served.Load()
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := get(t, nil, front, tt.host, tt.path)
			if code != tt.code {
				t.Errorf("GET %s (Host %s) = %d %q, want %d", tt.path, tt.host, code, body, tt.code)
			}
			// A check says how the app is, and nothing else: no name.
			if strings.HasPrefix(tt.path, "/.hoist/") && body != "ok\n" && body != "unhealthy\n" && body != "no such route\n" {
				t.Errorf("GET %s = %q, want only ok, unhealthy or no such route", tt.path, body)
			}
		})
	}
	if a.served.Load() != served {
		t.Error("a balancer check reached the app")
	}
	// Through the balancer, for a client, the path is the app's own: a
	// client learns nothing of the host's routes from it.
	for _, app := range []string{"a", "b", "c"} {
		code, _ := get(t, nil, front, "a.test", BalancerCheckPath(app), "X-Forwarded-For", "203.0.113.9")
		if code != http.StatusOK || a.served.Load() == served {
			t.Errorf("GET %s for a client through the balancer = %d, answered by the proxy and not by the app", BalancerCheckPath(app), code)
		}
		served = a.served.Load()
	}
}

// waitUnhealthy waits until app's upstream is out of service.
func waitUnhealthy(t *testing.T, s *Server, app string) {
	t.Helper()
	waittest.Within(t, 5*time.Second, app+"'s upstream to turn unhealthy", func() bool {
		e := s.table.Load().byApp(app)
		return e != nil && !e.up.healthy.Load()
	})
}

func TestPrivatePeer(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:5": true, "[::1]:5": true, "10.1.2.3:80": true, "172.16.0.9:80": true, "192.168.1.1:1": true,
		"[fd00::1]:8": true, "[::ffff:10.0.0.1]:8": true,
		"203.0.113.7:80": false, "8.8.8.8:53": false, "[2001:db8::1]:80": false, "not an address": false,
	}
	for addr, want := range tests {
		if got := privatePeer(addr); got != want {
			t.Errorf("privatePeer(%q) = %v, want %v", addr, got, want)
		}
	}
}
