package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/waittest"
)

// stallingUpstream answers its health checks, and holds every other
// request without answering: it says on arrived when one came, and on
// closed when the proxy closed that request's connection.
func stallingUpstream(t *testing.T) (addr string, arrived, closed chan struct{}) {
	return holdingUpstream(t, "", false)
}

// TestClientLeavesCancelsUpstream: a client that leaves while its
// request waits on a slow upstream frees the upstream at once, not at
// the upstream header timeout.
func TestClientLeavesCancelsUpstream(t *testing.T) { bothPaths(t, testClientLeavesCancelsUpstream) }

func testClientLeavesCancelsUpstream(t *testing.T, fast bool) {
	addr, arrived, closed := stallingUpstream(t)
	s, front := newProxy(t, Options{HealthInterval: time.Hour}, fast)
	setRoute(t, s, route("a", addr, "a.test"))
	tests := map[string]string{
		"GET":  "GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"POST": "POST /slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nhi",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addrOf(front.URL))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			select {
			case <-arrived:
			case <-time.After(5 * time.Second):
				t.Fatal("the request never reached the upstream")
			}
			c.Close()
			left := time.Now()
			select {
			case <-closed:
				t.Logf("upstream connection closed %s after the client left", time.Since(left).Round(time.Millisecond))
			case <-time.After(3 * time.Second):
				t.Fatal("the upstream connection was still open 3s after the client left")
			}
			waitInFlight(t, s, 0)
		})
	}
}

// waitInFlight waits (up to 3s) until the route's in-flight count is n.
func waitInFlight(t *testing.T, s *Server, n int64) {
	t.Helper()
	waitStatus(t, s, fmt.Sprintf("%d in flight", n), func(rs hostproto.RouteStatus) bool { return rs.InFlight == n })
}

// waitOpenWebSockets waits (up to 3s) until the route has n open
// WebSockets.
func waitOpenWebSockets(t *testing.T, s *Server, n int) {
	t.Helper()
	waitStatus(t, s, fmt.Sprintf("%d open WebSockets", n), func(rs hostproto.RouteStatus) bool { return rs.OpenWebSockets == n })
}

// waitStatus waits (up to 3s) until the proxy's one route's status is
// as want says.
func waitStatus(t *testing.T, s *Server, what string, want func(hostproto.RouteStatus) bool) {
	t.Helper()
	var st []hostproto.RouteStatus
	if !waittest.Poll(3*time.Second, func() bool {
		st = s.Status(context.Background())
		return len(st) == 1 && want(st[0])
	}) {
		t.Fatalf("status after 3s: %+v, want %s", st, what)
	}
}
