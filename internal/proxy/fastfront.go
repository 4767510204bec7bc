package proxy

import (
	"crypto/tls"
	"net"
	"strings"

	"github.com/hoistdev/hoist/internal/proxy/fastloop"
)

// This file and h2fast.go are the only ones that know of the fast
// loop: without them (and the one line in NewPublic that calls
// fastLoop, the one in forward that calls forwardH2), net/http serves
// every request, and the proxy is whole.

// fastLoop returns the fast loop for ln, in front of net/http's server.
func (s *Server) fastLoop(ln net.Listener, conf *tls.Config, t Timeouts) front {
	t = t.withDefaults()
	// HTTP/2 requests take the loop's way to the upstreams too, over
	// pools of their own.
	s.h2Upstreams.CompareAndSwap(nil, fastloop.NewUpstreams(s.opts.UpstreamHeaderTimeout, maxAnswerHead))
	return fastloop.New(ln, fastloop.Config{
		Router: loopRouter{s}, TLS: conf,
		ReadHeaderTimeout: t.ReadHeader, IdleTimeout: t.Idle, MaxHeaderBytes: t.MaxHeaderBytes, WriteTimeout: s.opts.WriteTimeout,
		UpstreamHeaderTimeout: s.opts.UpstreamHeaderTimeout, MaxAnswerHead: maxAnswerHead,
		Page: pageBody, Trust: s.trust,
	})
}

// loopRouter routes the fast loop's requests with the proxy's table,
// and records them as net/http's path does.
type loopRouter struct{ s *Server }

// Route takes a request to a healthy upstream that is not redirected
// to HTTPS and is no ACME challenge or balancer check; net/http's path
// answers the rest.
func (r loopRouter) Route(hostport, path string, tls bool) (fastloop.Target, bool) {
	if strings.HasPrefix(path, "/.well-known/acme-challenge/") || strings.HasPrefix(path, balancerCheckPrefix) {
		return fastloop.Target{}, false
	}
	host := hostOf(hostport)
	e := r.s.pick(host, path)
	if e == nil {
		return fastloop.Target{}, false
	}
	if !e.up.healthy.Load() || e.route.Maintenance != nil || !tls && r.s.redirects(e, host) {
		e.up.inflight.Add(-1)
		return fastloop.Target{}, false
	}
	t := fastloop.Target{Addr: e.up.addr, HSTS: e.route.HSTS && tls, Ref: e}
	if len(e.route.Pages) > 0 {
		t.Page = e.page
	}
	return t, true
}

func (r loopRouter) Done(t fastloop.Target, f *fastloop.Finished) {
	e := t.Ref.(*entry)
	e.up.inflight.Add(-1)
	r.s.record(e.m, &requestLog{method: f.Method, host: f.Host, path: f.Path, remote: f.Remote, proto: "HTTP/1.1",
		status: f.Status, bytes: f.Bytes, start: f.Start})
}
