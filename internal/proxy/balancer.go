package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// A load balancer in front of the hosts (an AWS ALB) checks each host's
// proxy with the host's own address as Host, which names no route. It
// asks this path instead: the proxy answers for the app's route, 200
// when its upstream is healthy, 503 when not, 404 when the host has no
// such route, and says nothing more. Only the balancer's own checks are
// answered: from peers on private networks (the balancer's) and
// loopback, carrying no X-Forwarded-For, which a balancer adds to every
// request it forwards for a client and to none of its checks. Anything
// else is an ordinary request, so that whoever asks through the
// balancer cannot learn which apps the host serves.
const balancerCheckPrefix = "/.hoist/up/"

// BalancerCheckPath is the path a balancer checks app's health at, on
// each host's proxy.
func BalancerCheckPath(app string) string { return balancerCheckPrefix + app }

// balancerCheck answers a balancer's health check; it reports whether r
// was one.
func (s *Server) balancerCheck(w http.ResponseWriter, r *http.Request) bool {
	app, ok := strings.CutPrefix(r.URL.Path, balancerCheckPrefix)
	if !ok || !privatePeer(r.RemoteAddr) || r.Header[headers.ForwardedFor] != nil {
		return false
	}
	w.Header().Set("Cache-Control", "no-store")
	e := s.table.Load().byApp(app)
	switch {
	case e == nil:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "no such route\n")
	case !e.up.healthy.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "unhealthy\n")
	default:
		io.WriteString(w, "ok\n")
	}
	return true
}

// privatePeer reports whether addr (host:port) is on loopback or a
// private network.
func privatePeer(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate()
}
