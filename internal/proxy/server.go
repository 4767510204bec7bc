// Package proxy is hoist's edge proxy, run on each host by the same
// binary (hoist proxy run). It routes requests by Host name and path
// prefix to each app's current upstream on loopback, and makes deploys
// invisible to users:
//
//   - SetRoute (PUT /v1/routes/{app} on the control socket) health-checks
//     a new upstream first, and only then swaps it in; an upstream that
//     never turns healthy never gets a request, and the old route stays;
//   - the route table is an immutable snapshot behind an atomic pointer,
//     so the request path takes no lock;
//   - the old upstream drains: requests in flight finish, and WebSockets
//     stay open until the drain timeout, when both sides get a close
//     frame with 1001 Going Away, so that clients reconnect;
//   - upstreams are health-checked while live: one that fails its checks
//     is answered with 503 at once, one that refuses connections with 502.
//
// The control API is JSON over HTTP on a unix socket (control.go, with
// its Go client in client.go); routes persist to a state file written
// atomically (state.go). Metrics are Prometheus' text format
// (metrics.go), access logs JSON lines through log/slog. TLS
// certificates come from internal/certs. Run (run.go) serves it all as a
// systemd service: Type=notify, with socket activation.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy/fastloop"
	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// Options configure a Server.
type Options struct {
	// StatePath is where routes are kept across restarts ("" keeps none).
	StatePath string
	// TrustedProxies are the peers whose headers about the client
	// (X-Forwarded-*, X-Real-IP...) are kept, X-Forwarded-For appended
	// to; from anyone else they are dropped and replaced (headers.Trust).
	TrustedProxies []netip.Prefix
	// TrustedBalancers are the peers whose X-Forwarded-For, -Proto and
	// -Port are kept, and no other header about the client: the
	// balancer hoist provisioned, which passes the rest on from the
	// client (headers.Trust).
	TrustedBalancers []netip.Prefix
	// AccessLog receives one JSON line per request; nil logs nothing.
	AccessLog *slog.Logger
	// Certs obtains certificates for routes with TLS; nil serves no TLS.
	Certs *certs.Manager
	// HTTPSPort is the public HTTPS port redirects point to (default 443).
	HTTPSPort int
	// HealthInterval is how often live upstreams are checked (default 2s).
	HealthInterval time.Duration
	// UpstreamHeaderTimeout bounds the wait for an upstream's response
	// head (default 60s; negative for none).
	UpstreamHeaderTimeout time.Duration
	// WriteTimeout bounds each write to a client that stops reading
	// (default 60s): it is extended after every write that progresses,
	// so long downloads and event streams go on.
	WriteTimeout time.Duration
}

// Server is the proxy: an http.Handler for the public listeners and the
// operations behind the control socket.
type Server struct {
	opts      Options
	trust     headers.Trust // the proxies whose headers about the client are kept
	table     atomic.Pointer[table]
	transport *http.Transport // net/http's path to the upstreams
	buffers   *bufferPool
	health    *http.Client
	metrics   *metrics

	// h2Upstreams, set with the fast loop on, are the pools of plain
	// HTTP/2 requests (h2fast.go).
	h2Upstreams atomic.Pointer[fastloop.Upstreams]

	mu sync.Mutex // serialises route changes and state writes

	drainMu sync.Mutex
	drains  map[string][]*upstream // address -> upstreams draining or drained

	closed atomic.Bool
}

// New returns a server with the routes saved at opts.StatePath, if any.
// Restored upstreams are taken as healthy until their checks say not.
func New(opts Options) (*Server, error) {
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = 2 * time.Second
	}
	if opts.UpstreamHeaderTimeout == 0 {
		opts.UpstreamHeaderTimeout = 60 * time.Second
	} else if opts.UpstreamHeaderTimeout < 0 {
		opts.UpstreamHeaderTimeout = 0
	}
	if opts.HTTPSPort == 0 {
		opts.HTTPSPort = 443
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 60 * time.Second
	}
	s := &Server{opts: opts, trust: headers.Trust{Proxies: opts.TrustedProxies, Balancers: opts.TrustedBalancers}, buffers: &bufferPool{}, metrics: newMetrics(), drains: map[string][]*upstream{}}
	s.transport = newTransport(opts.UpstreamHeaderTimeout)
	s.health = &http.Client{Transport: guarded{newTransport(0)}, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	routes, err := loadState(opts.StatePath)
	if err != nil {
		return nil, err
	}
	var entries []*entry
	for _, r := range routes {
		e := s.newEntry(r, s.newUpstream(r.App, r.Upstream))
		s.startHealth(e)
		entries = append(entries, e)
	}
	s.table.Store(newTable(entries))
	if opts.Certs != nil {
		for _, r := range routes {
			if r.TLS {
				if err := opts.Certs.Manage(context.Background(), r.Hosts); err != nil {
					return nil, fmt.Errorf("route %s: certificates: %w", r.App, err)
				}
			}
		}
	}
	return s, nil
}

func (s *Server) newEntry(r hostproto.Route, u *upstream) *entry {
	p := routePrefix(&r)
	e := &entry{route: r, prefix: p, prefixSlash: p + "/", up: u, m: s.metrics.app(r.App)}
	if r.Maintenance != nil {
		e.maintenance = maintenanceBody(r.Maintenance, r.Pages[http.StatusServiceUnavailable])
	}
	return e
}

func (s *Server) newUpstream(app, addr string) *upstream {
	u := &upstream{app: app, addr: addr, ws: map[*wsConn]struct{}{}, stop: func() {}}
	u.healthy.Store(true)
	u.rp = &httputil.ReverseProxy{
		Transport:  guarded{s.transport},
		BufferPool: s.buffers,
		// ReverseProxy flushes streamed responses (no Content-Length,
		// event streams) at once by itself; a flush per write would cost
		// a syscall on every small response.
		FlushInterval: 0,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host
			s.trust.Forward(pr.Out.Header, pr.In)
		},
		ErrorHandler: s.upstreamError,
		ErrorLog:     nil,
	}
	return u
}

func (s *Server) startHealth(e *entry) {
	ctx, cancel := context.WithCancel(context.Background())
	e.up.stop = cancel
	go s.watchHealth(ctx, e.up, e.route.HealthPath)
}

// upstreamError answers a request the upstream failed: 504 if it took
// too long, 502 otherwise.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
		// The client went away; nobody reads this.
		w.WriteHeader(499)
		return
	}
	var be *bodyError
	if errors.As(err, &be) {
		// The client's body failed, not the upstream.
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		page(w, be.code())
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		page(w, http.StatusGatewayTimeout)
		return
	}
	page(w, http.StatusBadGateway)
}

// ServeHTTP routes one request: net/http's path, for every request the
// fast loop (internal/proxy/fastloop) does not serve, or all of them
// without it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := requestLog{method: r.Method, host: r.Host, path: r.URL.Path, remote: r.RemoteAddr, proto: r.Proto, start: time.Now()}
	if r.TLS == nil {
		// A TLS connection a front handed over after its handshake.
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st
		}
	}
	if r.ProtoMajor == 1 && (r.ProtoMinor == 0 || len(r.TransferEncoding) > 0) {
		// Framing that could be read two ways ends the connection (RFC
		// 9112 6.1), so that no bytes after it are taken for a request:
		// net/http drops a Content-Length sent beside chunked, and ignores
		// Transfer-Encoding on HTTP/1.0, before the handler can see them.
		w.Header().Set("Connection", "close")
	}
	rec := recorderPool.Get().(*statusRecorder)
	rec.ResponseWriter, rec.status, rec.bytes, rec.writeTimeout, rec.app, rec.pages, rec.hsts = w, 0, 0, s.opts.WriteTimeout, s.metrics.none, nil, false
	// Counted even if the handler is aborted with a panic (a cut answer).
	defer func() {
		l.status, l.bytes = rec.status, rec.bytes
		if l.status == 0 {
			l.status = http.StatusOK
		}
		app := rec.app
		rec.ResponseWriter, rec.app, rec.pages = nil, nil, nil
		recorderPool.Put(rec)
		s.record(app, &l)
	}()
	s.serve(rec, r)
}

// requestLog is a finished request, as the metrics and the access log
// see it.
type requestLog struct {
	method, host, path, remote, proto string
	status                            int
	bytes                             int64 // body bytes written to the client
	start                             time.Time
}

// record counts a finished request in its app's metrics and writes its
// access log line: both paths, net/http's and the fast loop's, report
// here.
func (s *Server) record(m *appMetrics, l *requestLog) {
	d := time.Since(l.start)
	m.observe(l.status, d)
	if s.opts.AccessLog != nil {
		s.opts.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("app", m.app), slog.String("host", l.host), slog.String("method", l.method),
			slog.String("path", l.path), slog.Int("status", l.status), slog.Int64("bytes", l.bytes),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("remote", l.remote),
			slog.String("proto", l.proto))
	}
}

var recorderPool = sync.Pool{New: func() any { return &statusRecorder{} }}

// pick looks up the route for host (lower case, no port) and path, and
// counts a request in flight to its upstream; nil if no route serves
// them. The caller ends the count.
func (s *Server) pick(host, path string) *entry {
	for {
		e := s.table.Load().lookup(host, path)
		if e == nil {
			return nil
		}
		e.up.inflight.Add(1)
		if !e.up.draining.Load() {
			return e
		}
		// Swapped out between the lookup and the count: the new table
		// has its successor.
		e.up.inflight.Add(-1)
	}
}

// redirects reports whether a plain-HTTP request for host on e goes to
// HTTPS instead: the route has TLS and its certificate is in.
func (s *Server) redirects(e *entry, host string) bool {
	return e.route.TLS && s.opts.Certs != nil && s.opts.Certs.Has(host)
}

// serve answers r, and sets the app it is counted for in w.
func (s *Server) serve(w *statusRecorder, r *http.Request) {
	if s.balancerCheck(w, r) {
		return
	}
	host := hostOf(r.Host)
	e := s.pick(host, r.URL.Path)
	if e == nil {
		page(w, http.StatusNotFound)
		return
	}
	defer e.up.inflight.Add(-1)
	w.app, w.pages = e.m, e.route.Pages
	if r.TLS == nil && s.redirects(e, host) {
		target := "https://" + host
		if s.opts.HTTPSPort != 443 {
			target += ":" + strconv.Itoa(s.opts.HTTPSPort)
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
		return
	}
	u := e.up
	w.hsts = e.route.HSTS && r.TLS != nil
	switch {
	case e.route.Maintenance != nil:
		answerMaintenance(w, e)
	case !u.healthy.Load():
		w.Header().Set("Retry-After", "5")
		page(w, http.StatusServiceUnavailable)
	case isUpgrade(r):
		s.serveUpgrade(w, r, e, u)
	default:
		s.forward(w, r, e)
	}
}

// SetRoute makes r live: the new upstream must answer its health check
// within r.HealthTimeout, then new requests go to it at once, and the old
// upstream, if another, drains in the background. It returns the old
// upstream's address ("" if none). On error the old route is untouched.
func (s *Server) SetRoute(ctx context.Context, r hostproto.Route) (string, error) {
	if s.closed.Load() {
		return "", errors.New("the proxy is shutting down")
	}
	if err := validateRoute(&r); err != nil {
		return "", err
	}
	if err := s.table.Load().conflict(&r); err != nil {
		return "", err
	}
	hctx, cancel := context.WithTimeout(ctx, r.HealthTimeout.Duration)
	defer cancel()
	if err := waitHealthy(hctx, s.health, r.Upstream, r.HealthPath); err != nil {
		return "", fmt.Errorf("route %s: %w; the route is unchanged", r.App, err)
	}
	if r.TLS && s.opts.Certs != nil {
		// Obtained (then renewed) in the background; plain HTTP serves
		// the route until the certificate is in.
		if err := s.opts.Certs.Manage(context.WithoutCancel(ctx), r.Hosts); err != nil {
			return "", fmt.Errorf("route %s: certificates: %w", r.App, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	if err := old.conflict(&r); err != nil {
		return "", err
	}
	prev := old.byApp(r.App)
	var up *upstream
	if prev != nil && prev.up.addr == r.Upstream {
		up = prev.up // same upstream, new settings: nothing to drain
	} else {
		up = s.newUpstream(r.App, r.Upstream)
	}
	e := s.newEntry(r, up)
	entries := make([]*entry, 0, len(old.all)+1)
	for _, x := range old.all {
		if x.route.App != r.App {
			entries = append(entries, x)
		}
	}
	entries = append(entries, e)
	next := newTable(entries)
	if err := saveState(s.opts.StatePath, routesOf(next)); err != nil {
		return "", err
	}
	if prev == nil || prev.up != up || prev.route.HealthPath != r.HealthPath {
		if prev != nil {
			prev.up.stop()
		}
		s.startHealth(e)
	}
	s.table.Store(next)
	if prev == nil || prev.up == up {
		return "", nil
	}
	s.drain(prev.up, r.DrainTimeout.Duration)
	return prev.up.addr, nil
}

// SetMaintenance puts app's route in maintenance (m), or takes it out
// (nil), at once: its upstream keeps running and being checked.
func (s *Server) SetMaintenance(app string, m *hostproto.Maintenance) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	prev := old.byApp(app)
	if prev == nil {
		return fmt.Errorf("no route for %s", app)
	}
	r := prev.route
	r.Maintenance = m
	if err := validateRoute(&r); err != nil {
		return err
	}
	return s.replaceEntry(old, prev, s.newEntry(r, prev.up))
}

// replaceEntry makes the routes those of old without drop, and with add
// if it is not nil; the caller holds s.mu.
func (s *Server) replaceEntry(old *table, drop, add *entry) error {
	entries := slices.DeleteFunc(slices.Clone(old.all), func(e *entry) bool { return e == drop })
	if add != nil {
		entries = append(entries, add)
	}
	next := newTable(entries)
	if err := saveState(s.opts.StatePath, routesOf(next)); err != nil {
		return err
	}
	s.table.Store(next)
	return nil
}

// DeleteRoute removes app's route and drains its upstream.
func (s *Server) DeleteRoute(app string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.table.Load()
	prev := old.byApp(app)
	if prev == nil {
		return fmt.Errorf("no route for %s", app)
	}
	if err := s.replaceEntry(old, prev, nil); err != nil {
		return err
	}
	prev.up.stop()
	s.drain(prev.up, prev.route.DrainTimeout.Duration)
	return nil
}

// Routes returns the live routes, by app.
func (s *Server) Routes() []hostproto.Route { return routesOf(s.table.Load()) }

func routesOf(t *table) []hostproto.Route {
	rs := make([]hostproto.Route, 0, len(t.all))
	for _, e := range t.all {
		rs = append(rs, e.route)
	}
	return rs
}

// Status reports the routes, with their health as last checked.
func (s *Server) Status(ctx context.Context) []hostproto.RouteStatus {
	t := s.table.Load()
	out := make([]hostproto.RouteStatus, 0, len(t.all))
	for _, e := range t.all {
		rs := hostproto.RouteStatus{Route: e.route, Healthy: e.up.healthy.Load(), InFlight: e.up.inflight.Load(), OpenWebSockets: e.up.openWebSockets()}
		if h := e.up.health.Load(); h != nil {
			rs.HealthError, rs.CheckedAt = h.Err, h.At
		}
		if e.route.TLS && s.opts.Certs != nil {
			rs.Certificates = map[string]hostproto.CertStatus{}
			for _, h := range e.route.Hosts {
				rs.Certificates[h] = s.opts.Certs.Status(h)
			}
		}
		rs.Draining = s.drainingFor(e.route.App)
		out = append(out, rs)
	}
	return out
}

// Close ends health checks and closes every WebSocket with 1001 Going
// Away (the proxy is going away). The listeners are Run's to close.
func (s *Server) Close() {
	s.closed.Store(true)
	t := s.table.Load()
	var ups []*upstream
	for _, e := range t.all {
		e.up.stop()
		ups = append(ups, e.up)
	}
	s.drainMu.Lock()
	for _, us := range s.drains {
		ups = append(ups, us...)
	}
	s.drainMu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() { u.closeWebSockets() })
	}
	wg.Wait()
	s.transport.CloseIdleConnections()
	if ups := s.h2Upstreams.Load(); ups != nil {
		ups.Close()
	}
}

// statusRecorder remembers the app, status and size written, for logs
// and metrics, and pushes the write deadline back before each write.
type statusRecorder struct {
	http.ResponseWriter
	app          *appMetrics
	pages        map[int]string // the app's own error pages
	hsts         bool           // add Strict-Transport-Security unless the app sent its own
	status       int
	bytes        int64
	writeTimeout time.Duration
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.addHSTS()
	}
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.progress()
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.addHSTS()
		r.status = http.StatusOK
	}
	r.progress()
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// addHSTS sets the proxy's Strict-Transport-Security on an answer that
// has none (headers.SetHSTS).
func (r *statusRecorder) addHSTS() { headers.SetHSTS(r.Header(), r.hsts) }

// progress gives the client writeTimeout more to take what is written
// next (the buffered writes, and the flush after them).
func (r *statusRecorder) progress() {
	http.NewResponseController(r.ResponseWriter).SetWriteDeadline(time.Now().Add(r.writeTimeout))
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// page writes one of the proxy's own small HTML error pages.
func page(w http.ResponseWriter, code int) {
	body := pageBody(code)
	if rec, ok := w.(*statusRecorder); ok && rec.pages[code] != "" {
		body = rec.pages[code] // the app's own
	}
	writePage(w, code, body)
}

// writePage answers code with an HTML page.
func writePage(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// pageMessages say what went wrong, for each status the proxy answers
// itself.
var pageMessages = map[int]string{
	http.StatusBadRequest:            "The request could not be read.",
	http.StatusNotFound:              "No application is served at this address.",
	http.StatusRequestEntityTooLarge: "The request body is larger than this application accepts.",
	http.StatusInternalServerError:   "This connection cannot be upgraded.",
	http.StatusBadGateway:            "The application is not answering. Try again in a moment.",
	http.StatusServiceUnavailable:    "The application is not available right now. Try again in a moment.",
	http.StatusGatewayTimeout:        "The application took too long to answer.",
}

func pageBody(code int) string {
	text := http.StatusText(code)
	return fmt.Sprintf("<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p>\n", code, text, code, text, pageMessages[code])
}

type tlsStateKey struct{}

// connContext is the public http.Server's ConnContext. A front that
// did the TLS handshake itself hands net/http a wrapped connection,
// which hides the *tls.Conn from it: the wrapper says the state, and
// ServeHTTP sets it as Request.TLS.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(interface{ TLSConnectionState() *tls.ConnectionState }); ok {
		if st := tc.TLSConnectionState(); st != nil {
			return context.WithValue(ctx, tlsStateKey{}, st)
		}
	}
	return ctx
}
