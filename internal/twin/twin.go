// Package twin is the lab's balancer twin: what an AWS Application Load
// Balancer does for hoist, played on this machine so that `balancer:
// alb` can be tried on the lab. It ends TLS for the app's names,
// redirects HTTP to HTTPS, forwards each request to one of its
// registered targets (the hosts' proxies) over HTTP with
// X-Forwarded-For, -Proto and -Port set as the ALB sets them,
// health-checks each target, and takes targets in and out as ELBv2's
// RegisterTargets and DeregisterTargets do, with a deregistration delay,
// reporting their states by ELBv2's names (DescribeTargetHealth). It is
// net/http/httputil's ReverseProxy with a control socket; the lab runs
// it in a network namespace of its own (`hoist lab balancer`).
package twin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// Target states, as ELBv2 names them.
const (
	// StateInitial: registered, not yet seen healthy enough times.
	StateInitial = "initial"
	// StateHealthy: passes its checks; it gets requests.
	StateHealthy = "healthy"
	// StateUnhealthy: failed its checks; it gets requests only when no
	// target is healthy ("fail open", as the ALB does).
	StateUnhealthy = "unhealthy"
	// StateDraining: deregistered; its requests in flight finish, it
	// gets no new one.
	StateDraining = "draining"
	// StateUnused: not registered.
	StateUnused = "unused"
)

// Config is how a twin runs. The lab writes it as JSON.
type Config struct {
	// HTTP and HTTPS are where it listens, ":80" and ":443".
	HTTP  string `json:"http"`
	HTTPS string `json:"https"`
	// Control is the unix socket it takes registrations on.
	Control string `json:"control"`
	// CertFile and KeyFile are its certificate (PEM), for every name.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// StatePath keeps the registered targets across restarts.
	StatePath string `json:"state_path"`
	// HealthPath is what each target is checked at, with GET; 200-299 is
	// healthy.
	HealthPath string `json:"health_path"`
	// Interval is the time between two checks of a target; Timeout
	// bounds each. HealthyThreshold successes in a row make a target
	// healthy, UnhealthyThreshold failures unhealthy.
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	HealthyThreshold   int      `json:"healthy_threshold"`
	UnhealthyThreshold int      `json:"unhealthy_threshold"`
	// DeregistrationDelay is how long a deregistered target's requests
	// may take to finish.
	DeregistrationDelay Duration `json:"deregistration_delay"`
}

// Duration is a time.Duration written as "10s" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	d.Duration = v
	return err
}

func (c *Config) defaults() {
	if c.Interval.Duration <= 0 {
		c.Interval.Duration = 2 * time.Second
	}
	if c.Timeout.Duration <= 0 {
		c.Timeout.Duration = time.Second
	}
	if c.HealthyThreshold <= 0 {
		c.HealthyThreshold = 2
	}
	if c.UnhealthyThreshold <= 0 {
		c.UnhealthyThreshold = 2
	}
}

// ReadConfig reads a twin's config file.
func ReadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("balancer twin: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("balancer twin %s: %w", path, err)
	}
	return c, nil
}

// TargetHealth is one target and its state.
type TargetHealth struct {
	Target string `json:"target"` // host:port
	State  string `json:"state"`
	// Reason says why a target is not healthy: its last check's failure.
	Reason string `json:"reason,omitempty"`
}

// target is a registered (or draining) target.
type target struct {
	addr      string
	transport *http.Transport
	inflight  atomic.Int64

	// Under Server.mu.
	state      string
	reason     string
	ok, failed int           // checks in a row
	drained    chan struct{} // closed once a draining target is done
	stopCheck  chan struct{} // closed to stop its checks
}

// Server is a running twin.
type Server struct {
	cfg  Config
	log  *slog.Logger
	cert tls.Certificate

	mu      sync.Mutex
	targets map[string]*target
	order   []string // registration order, for round-robin
	next    int
	closed  bool
}

// New returns a twin for cfg, with its registered targets from its state.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: log, targets: map[string]*target{}}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("balancer twin: %w", err)
		}
		s.cert = cert
	}
	if cfg.StatePath != "" {
		b, err := os.ReadFile(cfg.StatePath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("balancer twin: %w", err)
		}
		var registered []string
		if len(b) > 0 {
			if err := json.Unmarshal(b, &registered); err != nil {
				return nil, fmt.Errorf("balancer twin %s: %w", cfg.StatePath, err)
			}
		}
		for _, t := range registered {
			s.registerLocked(t)
		}
	}
	return s, nil
}

// Serve serves the twin's listeners until ctx ends; a nil listener is
// not served.
func (s *Server) Serve(ctx context.Context, httpLn, httpsLn, control net.Listener) error {
	srvs := []*http.Server{}
	errc := make(chan error, 3)
	serve := func(ln net.Listener, h http.Handler, tlsOn bool) {
		if ln == nil {
			return
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		if tlsOn {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{s.cert},
				NextProtos: []string{"h2", "http/1.1"}}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		srvs = append(srvs, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	serve(httpLn, http.HandlerFunc(redirect), false)
	serve(httpsLn, s.forwarder(), true)
	serve(control, s.controlHandler(), false)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range srvs {
		srv.Shutdown(shut)
	}
	s.close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Run listens where cfg says and serves until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	httpsLn, err := net.Listen("tcp", cfg.HTTPS)
	if err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	os.Remove(cfg.Control) // left by a twin that was killed
	control, err := net.Listen("unix", cfg.Control)
	if err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	log.Info("balancer twin serving", "http", cfg.HTTP, "https", cfg.HTTPS, "control", cfg.Control)
	return s.Serve(ctx, httpLn, httpsLn, control)
}

// redirect sends a plain HTTP request to the same URL over HTTPS, as
// the ALB's listener on 80 that hoist makes does (301).
func redirect(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
}

type targetKey struct{}

// forwarder sends each request to a target, with the headers the ALB
// adds: the client's address appended to X-Forwarded-For, and the
// scheme and port it came in on. The Host is the client's.
func (s *Server) forwarder() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(targetKey{}).(*target)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", t.addr
			pr.Out.Host = pr.In.Host
			client, _, _ := net.SplitHostPort(pr.In.RemoteAddr)
			xff := client
			if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
				xff = strings.Join(prior, ", ") + ", " + client
			}
			pr.Out.Header.Set("X-Forwarded-For", xff)
			pr.Out.Header.Set("X-Forwarded-Proto", "https")
			pr.Out.Header.Set("X-Forwarded-Port", "443")
		},
		Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			return r.Context().Value(targetKey{}).(*target).transport.RoundTrip(r)
		}),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("target failed", "target", r.Context().Value(targetKey{}).(*target).addr, "error", err)
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := s.pick()
		if t == nil {
			http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
			return
		}
		defer s.done(t)
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// pick chooses the next target in turn among the healthy ones, or
// among the unhealthy ones when none is healthy, and counts the request
// in its flight. nil when there is none.
func (s *Server) pick() *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, want := range []string{StateHealthy, StateUnhealthy} {
		for range len(s.order) {
			t := s.targets[s.order[s.next%len(s.order)]]
			s.next++
			if t.state == want {
				t.inflight.Add(1)
				return t
			}
		}
	}
	return nil
}

// done ends a request of t's; a draining target whose last request
// ended is drained.
func (s *Server) done(t *target) {
	if t.inflight.Add(-1) > 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state == StateDraining {
		s.drainedLocked(t)
	}
}

// Register puts targets in, each initial until its checks pass.
func (s *Server) Register(addrs ...string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("target %q is not host:port", a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addrs {
		s.registerLocked(a)
	}
	return s.saveLocked()
}

func (s *Server) registerLocked(addr string) {
	if t := s.targets[addr]; t != nil {
		if t.state != StateDraining {
			return // registered already
		}
		// Registered again while it drains: it starts over, as on ELBv2.
		s.removeLocked(t)
	}
	t := &target{addr: addr, state: StateInitial, reason: "Elb.RegistrationInProgress", stopCheck: make(chan struct{}),
		transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConnsPerHost: 64,
			IdleConnTimeout: time.Minute, ResponseHeaderTimeout: time.Minute}}
	s.targets[addr] = t
	s.order = append(s.order, addr)
	go s.check(t)
}

// Deregister takes targets out: they get no new request, and are
// unused once their requests in flight finish or the deregistration
// delay passes.
func (s *Server) Deregister(addrs ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addrs {
		t := s.targets[a]
		if t == nil || t.state == StateDraining {
			continue
		}
		t.state, t.reason, t.drained = StateDraining, "Target.DeregistrationInProgress", make(chan struct{})
		close(t.stopCheck)
		if t.inflight.Load() == 0 {
			s.drainedLocked(t)
			continue
		}
		go func(drained chan struct{}) {
			select {
			case <-drained:
			case <-time.After(s.cfg.DeregistrationDelay.Duration):
				s.mu.Lock()
				if s.targets[a] == t {
					s.log.Info("deregistration delay passed with requests in flight", "target", a, "in_flight", t.inflight.Load())
					s.drainedLocked(t)
				}
				s.mu.Unlock()
			}
		}(t.drained)
	}
	return s.saveLocked()
}

func (s *Server) drainedLocked(t *target) {
	select {
	case <-t.drained:
		return
	default:
	}
	close(t.drained)
	s.removeLocked(t)
}

func (s *Server) removeLocked(t *target) {
	if s.targets[t.addr] != t {
		return
	}
	delete(s.targets, t.addr)
	s.order = slices.DeleteFunc(s.order, func(a string) bool { return a == t.addr })
	t.transport.CloseIdleConnections()
}

// saveLocked keeps the registered targets (draining ones are not).
func (s *Server) saveLocked() error {
	if s.cfg.StatePath == "" {
		return nil
	}
	registered := []string{}
	for _, a := range s.order {
		if s.targets[a].state != StateDraining {
			registered = append(registered, a)
		}
	}
	b, _ := json.Marshal(registered)
	return atomicfile.Write(s.cfg.StatePath, b, 0o644)
}

// Health reports every target's state; one asked for by name that is
// not registered is unused.
func (s *Server) Health(addrs ...string) []TargetHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(addrs) == 0 {
		addrs = s.order
	}
	out := []TargetHealth{}
	for _, a := range addrs {
		th := TargetHealth{Target: a, State: StateUnused, Reason: "Target.NotRegistered"}
		if t := s.targets[a]; t != nil {
			th.State, th.Reason = t.state, t.reason
		}
		out = append(out, th)
	}
	return out
}

// check health-checks t every Interval until it is deregistered.
func (s *Server) check(t *target) {
	client := &http.Client{Timeout: s.cfg.Timeout.Duration, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tick := time.NewTicker(s.cfg.Interval.Duration)
	defer tick.Stop()
	for {
		reason := s.probe(client, t.addr)
		s.mu.Lock()
		if t.state == StateDraining {
			s.mu.Unlock()
			return
		}
		if reason == "" {
			t.ok, t.failed = t.ok+1, 0
			if t.ok >= s.cfg.HealthyThreshold && t.state != StateHealthy {
				s.log.Info("target healthy", "target", t.addr)
				t.state, t.reason = StateHealthy, ""
			}
		} else {
			t.ok, t.failed = 0, t.failed+1
			if t.failed >= s.cfg.UnhealthyThreshold && t.state != StateUnhealthy {
				s.log.Info("target unhealthy", "target", t.addr, "reason", reason)
				t.state = StateUnhealthy
			}
			if t.state == StateUnhealthy {
				t.reason = reason
			}
		}
		s.mu.Unlock()
		select {
		case <-t.stopCheck:
			return
		case <-tick.C:
		}
	}
}

// probe checks addr once; "" when healthy, else why not, in ELBv2's
// words.
func (s *Server) probe(client *http.Client, addr string) string {
	resp, err := client.Get("http://" + addr + s.cfg.HealthPath)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "Target.Timeout"
		}
		return "Target.FailedHealthChecks: " + err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Sprintf("Target.ResponseCodeMismatch: %d", resp.StatusCode)
	}
	return ""
}

func (s *Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, t := range s.targets {
		if t.state != StateDraining {
			close(t.stopCheck)
			t.state = StateDraining // stops its checks; never saved
		}
		t.transport.CloseIdleConnections()
	}
}

// The control socket: JSON over HTTP, as the lab's provisioning and a
// deploy's switch use it.
//
//	POST /v1/register    {"targets": ["10.213.7.11:80"]}
//	POST /v1/deregister  {"targets": [...]}
//	GET  /v1/health[?target=ADDR...]  [{"target", "state", "reason"}]
type targetsBody struct {
	Targets []string `json:"targets"`
}

func (s *Server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	change := func(fn func(...string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var b targetsBody
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&b); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := fn(b.Targets...); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(s.Health(b.Targets...))
		}
	}
	mux.HandleFunc("POST /v1/register", change(s.Register))
	mux.HandleFunc("POST /v1/deregister", change(s.Deregister))
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Health(r.URL.Query()["target"]...))
	})
	return mux
}
