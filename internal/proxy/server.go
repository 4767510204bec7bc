package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hoisttls "github.com/hoistdev/hoist/internal/tls"
)

// Options configure a Server.
type Options struct {
	// StatePath is where routes are kept across restarts ("" keeps none).
	StatePath string
	// TrustedProxies are the peers whose X-Forwarded-* headers are kept;
	// from anyone else they are replaced.
	TrustedProxies []netip.Prefix
	// AccessLog receives one JSON line per request; nil logs nothing.
	AccessLog *slog.Logger
	// Certs obtains certificates for routes with TLS; nil serves no TLS.
	Certs *hoisttls.Manager
}

// entry is a route with its live upstream.
type entry struct {
	route Route
	up    *upstream
}

// table is an immutable snapshot of the routes.
type table struct {
	entries []*entry
}

func (t *table) lookup(host, path string) *entry {
	var best *entry
	bestScore := -1
	for _, e := range t.entries {
		if score, ok := e.route.matches(host, path); ok && score > bestScore {
			best, bestScore = e, score
		}
	}
	return best
}

// Server is the proxy: an http.Handler for the public listeners and the
// control operations behind the control socket.
type Server struct {
	opts      Options
	table     atomic.Pointer[table]
	transport *http.Transport
	buffers   *bufferPool
	health    *http.Client
	metrics   *metrics

	mu     sync.Mutex // serialises route changes
	drains sync.Map   // upstream address -> *upstream being drained
}

// New returns a server with the routes saved at opts.StatePath, if any.
func New(opts Options) (*Server, error) {
	s := &Server{opts: opts, transport: newTransport(), buffers: &bufferPool{}, metrics: newMetrics()}
	s.health = &http.Client{Transport: s.transport, Timeout: 2 * time.Second}
	s.table.Store(&table{})
	routes, err := loadState(opts.StatePath)
	if err != nil {
		return nil, err
	}
	t := &table{}
	for _, r := range routes {
		t.entries = append(t.entries, &entry{route: r, up: s.newUpstream(r.Upstream)})
	}
	s.table.Store(t)
	return s, nil
}

func (s *Server) newUpstream(addr string) *upstream {
	u := &upstream{addr: addr, ws: map[*wsConn]struct{}{}}
	u.proxy = &httputil.ReverseProxy{
		Transport:  s.transport,
		BufferPool: s.buffers,
		// No periodic flushing: ReverseProxy flushes streamed responses
		// (no Content-Length, event streams) at once by itself, and a
		// flush per write costs a syscall on every small response.
		FlushInterval: 0,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host
			s.forwarded(pr)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			page(w, http.StatusBadGateway, "The application is not answering. Try again in a moment.")
		},
	}
	return u
}

// forwarded sets X-Forwarded-For/-Proto/-Host, keeping the client's own
// values only when the peer is a trusted proxy.
func (s *Server) forwarded(pr *httputil.ProxyRequest) {
	ip, _, _ := net.SplitHostPort(pr.In.RemoteAddr)
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	h := pr.Out.Header
	if s.trusted(ip) {
		if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		if p := pr.In.Header.Get("X-Forwarded-Proto"); p != "" {
			proto = p
		}
	}
	h.Set("X-Forwarded-For", ip)
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", pr.In.Host)
}

func (s *Server) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ServeHTTP routes one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	e := s.table.Load().lookup(host, r.URL.Path)
	rec := &statusRecorder{ResponseWriter: w}
	app := "-"
	switch {
	case e == nil:
		page(rec, http.StatusNotFound, "No application is served at this address.")
	case e.route.TLS && r.TLS == nil && s.opts.Certs != nil:
		app = e.route.App
		http.Redirect(rec, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	default:
		if e.route.HSTS && r.TLS != nil {
			rec.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		app = e.route.App
		up := e.up
		up.inflight.Add(1)
		var rw http.ResponseWriter = rec
		if isUpgrade(r) {
			rw = &hijackTracker{ResponseWriter: rec, up: up}
			s.metrics.websockets.Add(1)
			defer s.metrics.websockets.Add(-1)
		}
		up.proxy.ServeHTTP(rw, r)
		up.inflight.Add(-1)
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	d := time.Since(start)
	s.metrics.observe(app, status, d)
	if s.opts.AccessLog != nil {
		s.opts.AccessLog.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("app", app), slog.String("host", r.Host), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("remote", r.RemoteAddr))
	}
}

// SetRoute makes r live: the new upstream must answer its health check
// within r.HealthTimeout, then new requests go to it at once, and the old
// upstream, if another, drains in the background. It returns the old
// upstream's address ("" if none).
func (s *Server) SetRoute(ctx context.Context, r Route) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	if r.TLS && s.opts.Certs != nil {
		// Obtained in the background; the route serves meanwhile, and
		// HTTPS for its names works once the certificate is in.
		if err := s.opts.Certs.Manage(context.WithoutCancel(ctx), r.exactHosts()); err != nil {
			return "", fmt.Errorf("route %s: certificates: %w", r.App, err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, r.HealthTimeout.Duration)
	defer cancel()
	if err := checkHealth(hctx, s.health, r.Upstream, r.HealthPath); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	next := &table{}
	var prev *entry
	for _, e := range old.entries {
		if e.route.App == r.App {
			prev = e
			continue
		}
		next.entries = append(next.entries, e)
	}
	up := s.newUpstream(r.Upstream)
	if prev != nil && prev.up.addr == r.Upstream {
		up = prev.up // same upstream, new settings: nothing to drain
	}
	next.entries = append(next.entries, &entry{route: r, up: up})
	if err := saveState(s.opts.StatePath, routesOf(next)); err != nil {
		return "", err
	}
	s.table.Store(next)
	if prev == nil || prev.up == up {
		return "", nil
	}
	s.draining(prev.up, r.DrainTimeout.Duration)
	return prev.up.addr, nil
}

func (s *Server) draining(u *upstream, timeout time.Duration) {
	s.drains.Store(u.addr, u)
	go func() {
		u.drain(timeout)
		// Idle keep-alive connections to the old upstream go too.
		s.transport.CloseIdleConnections()
		s.drains.CompareAndDelete(u.addr, u)
	}()
}

// WaitDrained blocks until the upstream at addr has drained or ctx ends.
func (s *Server) WaitDrained(ctx context.Context, addr string) error {
	for {
		v, ok := s.drains.Load(addr)
		if !ok || v.(*upstream).drained() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstream %s still has requests in flight: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DeleteRoute removes app's route and drains its upstream.
func (s *Server) DeleteRoute(app string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	next := &table{}
	for _, e := range old.entries {
		if e.route.App == app {
			s.draining(e.up, e.route.DrainTimeout.Duration)
			continue
		}
		next.entries = append(next.entries, e)
	}
	if len(next.entries) == len(old.entries) {
		return fmt.Errorf("no route for %s", app)
	}
	if err := saveState(s.opts.StatePath, routesOf(next)); err != nil {
		return err
	}
	s.table.Store(next)
	return nil
}

// RouteStatus is one route as the control API reports it.
type RouteStatus struct {
	Route
	Healthy        bool  `json:"healthy"`
	InFlight       int64 `json:"in_flight"`
	OpenWebSockets int   `json:"open_websockets"`
	// Certificates maps each name to its certificate's expiry.
	Certificates map[string]time.Time `json:"certificates,omitempty"`
}

// Status reports the routes, checking each upstream's health once.
func (s *Server) Status(ctx context.Context) []RouteStatus {
	t := s.table.Load()
	out := make([]RouteStatus, 0, len(t.entries))
	for _, e := range t.entries {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := checkOnce(hctx, s.health, e.up.addr, e.route.HealthPath)
		cancel()
		s.metrics.setHealth(e.route.App, err == nil)
		rs := RouteStatus{Route: e.route, Healthy: err == nil, InFlight: e.up.inflight.Load(), OpenWebSockets: e.up.openWebSockets()}
		if e.route.TLS && s.opts.Certs != nil {
			rs.Certificates = map[string]time.Time{}
			for _, h := range e.route.exactHosts() {
				if exp, ok := s.opts.Certs.Expiry(h); ok {
					rs.Certificates[h] = exp
				}
			}
		}
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

func routesOf(t *table) []Route {
	rs := make([]Route, 0, len(t.entries))
	for _, e := range t.entries {
		rs = append(rs, e.route)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].App < rs[j].App })
	return rs
}

func checkOnce(ctx context.Context, c *http.Client, addr, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// statusRecorder remembers the status written, for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// page writes a small HTML error page.
func page(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p>\n", code, http.StatusText(code), code, http.StatusText(code), msg)
}
