package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunOptions configure the long-running proxy.
type RunOptions struct {
	HTTP    string // public listen address, like :80 (when systemd passes none)
	HTTPS   string // public TLS address, like :443; served when Options.Certs is set
	Control string // unix socket path
	Metrics string // loopback address for /metrics; "" for none
	// Pprof also serves net/http/pprof's /debug/pprof/ on the metrics
	// address, for profiling the proxy in place.
	Pprof bool
	Options
	Timeouts Timeouts
	// FastLoop serves plain GET and HEAD requests with the proxy's own
	// HTTP/1.1 loop (internal/proxy/fastloop), in front of net/http.
	FastLoop bool
	Log      *slog.Logger
	// Exec is the command line an upgrade starts (upgrade.go): the hoist
	// binary on disk with this process's arguments. None: no upgrades.
	Exec []string
	// Issuer fingerprints the certificate issuer settings, for setup to
	// tell whether the proxy runs with the ones on disk.
	Issuer string
}

// Timeouts guard the public listeners against slow and idle clients.
type Timeouts struct {
	ReadHeader time.Duration // the request head (slowloris); default 10s
	Read       time.Duration // the whole request, body included; default 5m
	Idle       time.Duration // a keep-alive connection between requests; default 2m
	// MaxHeaderBytes bounds the request head; default 64 KiB (431 past it).
	MaxHeaderBytes int
	// Shutdown bounds a graceful stop; default 30s.
	Shutdown time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = 10 * time.Second
	}
	if t.Read <= 0 {
		t.Read = 5 * time.Minute
	}
	if t.Idle <= 0 {
		t.Idle = 2 * time.Minute
	}
	if t.MaxHeaderBytes <= 0 {
		t.MaxHeaderBytes = 64 << 10
	}
	if t.Shutdown <= 0 {
		t.Shutdown = 30 * time.Second
	}
	return t
}

// PublicServer is the http.Server for a public listener, with the
// timeouts and header limit that keep slow clients from holding it.
func PublicServer(h http.Handler, t Timeouts, errLog *log.Logger) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		ErrorLog:          errLog,
		ConnContext:       connContext,
		// Frames no larger than the size every peer must take (RFC 9113
		// 4.2), announced: Go's 1 MiB default lets one HEADERS frame
		// hold a 1 MiB header block, which h2spec 4.2/3 counts as a fault.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
	}
}

// PublicHTTP serves a public listener: net/http's server, with the fast
// loop in front of it if asked.
type PublicHTTP struct {
	srv   *http.Server
	ln    net.Listener // the public listener
	front front        // nil: srv serves ln itself
	tls   bool
}

// front is a server in front of net/http's: it serves the public
// listener and hands net/http's server, through Handoff, the
// connections it does not serve itself.
type front interface {
	Serve() error
	Shutdown(context.Context)
	Handoff() net.Listener
}

// NewPublic returns the front of s on ln, a TCP listener: plain HTTP,
// or HTTPS with conf. handler is s, or s wrapped (the ACME HTTP-01
// challenge handler).
func NewPublic(s *Server, handler http.Handler, ln net.Listener, conf *tls.Config, t Timeouts, errLog *log.Logger, fast bool) *PublicHTTP {
	p := &PublicHTTP{srv: PublicServer(handler, t, errLog), ln: ln, tls: conf != nil}
	p.srv.TLSConfig = conf
	if fast {
		p.front = s.fastLoop(ln, conf, t)
	}
	return p
}

// Serve serves until Shutdown; it returns http.ErrServerClosed then.
func (p *PublicHTTP) Serve() error {
	switch {
	case p.front != nil:
		// Connections come from the front with their TLS handshake done.
		go p.srv.Serve(p.front.Handoff())
		return p.front.Serve()
	case p.tls:
		return p.srv.ServeTLS(p.ln, "", "")
	}
	return p.srv.Serve(p.ln)
}

// Shutdown stops accepting, closes idle connections and waits for those
// answering a request, up to ctx.
func (p *PublicHTTP) Shutdown(ctx context.Context) {
	if p.front != nil {
		p.front.Shutdown(ctx)
	}
	p.srv.Shutdown(ctx)
}

// Run serves until ctx ends, then shuts down gracefully: WebSockets get
// 1001 Going Away, requests in flight finish. It takes its public
// listeners from systemd (socket activation: the first socket is HTTP,
// the second HTTPS, or by FileDescriptorName= "http" and "https") when
// there are any, so that a restart of the proxy never closes the
// listening sockets, and tells systemd when it is ready (Type=notify).
// An upgrade (upgrade.go) hands all its sockets to a new process; Run
// then finishes its requests and returns nil.
func Run(ctx context.Context, o RunOptions) error {
	if o.Log == nil {
		o.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.Options.HTTPSPort == 0 && o.HTTPS != "" && len(systemdListeners()) == 0 {
		if _, p, err := net.SplitHostPort(o.HTTPS); err == nil {
			o.Options.HTTPSPort, _ = strconv.Atoi(p)
		}
	}
	s, err := New(o.Options)
	if err != nil {
		return err
	}
	defer s.Close()
	errLog := slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn)
	inherited := systemdListeners()
	up := newUpgrader(o)
	defer up.finished()
	ln, err := publicListener(inherited, "http", 0, o.HTTP)
	if err != nil {
		return err
	}
	ln = up.listener("http", ln)
	var handler http.Handler = s
	if o.Certs != nil {
		handler = o.Certs.HTTPHandler(s) // answers HTTP-01 challenges
	}
	pub := NewPublic(s, handler, ln, nil, o.Timeouts, errLog, o.FastLoop)
	errc := make(chan error, 4)
	go func() { errc <- pub.Serve() }()

	var sec *PublicHTTP
	if o.Certs != nil {
		tln, err := publicListener(inherited, "https", 1, o.HTTPS)
		if err != nil {
			return err
		}
		tln = up.listener("https", tln)
		sec = NewPublic(s, s, tln, o.Certs.TLSConfig(), o.Timeouts, errLog, o.FastLoop)
		go func() { errc <- sec.Serve() }()
	}

	cl, err := controlListener(inherited, o.Control)
	if err != nil {
		return err
	}
	defer func() {
		if !up.handedOver() { // the successor serves it now
			os.Remove(o.Control)
		}
	}()
	ctl := &http.Server{Handler: up.controlHandler(s.ControlHandler()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	cl = up.listener("control", cl)
	go func() { errc <- ctl.Serve(cl) }()

	var met *http.Server
	if o.Metrics != "" {
		host, _, err := net.SplitHostPort(o.Metrics)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("metrics address %q: give a loopback address, like 127.0.0.1:9180", o.Metrics)
		}
		ml, err := inheritedOr(inherited, "metrics", o.Metrics)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		ml = up.listener("metrics", ml)
		mux := http.NewServeMux()
		mux.Handle("/metrics", s.MetricsHandler())
		mux.Handle("/{$}", s.MetricsHandler())
		if o.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		met = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
		go func() { errc <- met.Serve(ml) }()
	}
	relCtx, stopRelease := context.WithCancel(ctx)
	defer stopRelease()
	go releaseIdle(relCtx)
	up.ready()
	o.Log.Info("proxy ready", "http", ln.Addr().String(), "https", o.Certs != nil, "control", o.Control,
		"metrics", o.Metrics, "routes", len(s.Routes()), "socket_activated", len(inherited) > 0,
		"upgraded", up.readyPipe != nil)
	up.onSignal(ctx)
	var runErr error
	select {
	case <-ctx.Done():
	case <-up.handed:
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.Timeouts.withDefaults().Shutdown)
	defer cancel()
	if up.handedOver() {
		o.Log.Info("proxy handed over; finishing requests in flight", "successor", up.successor.Load())
		sctx, cancel = up.bound(sctx)
		defer cancel()
		ctlDone := make(chan struct{})
		go func() { ctl.Shutdown(sctx); close(ctlDone) }() // answers in flight, route changes passed on
		defer func() { <-ctlDone }()
	} else {
		notify("STOPPING=1")
		o.Log.Info("proxy stopping")
		ctl.Close()
	}
	if met != nil {
		met.Close()
	}
	s.Close() // WebSockets: 1001
	if sec != nil {
		sec.Shutdown(sctx)
	}
	pub.Shutdown(sctx)
	if o.Certs != nil {
		o.Certs.Close()
	}
	return runErr
}

// inheritedListener is a socket systemd passed, with its name.
type inheritedListener struct {
	name string
	ln   net.Listener
}

var inheritedCache []inheritedListener

// systemdListeners returns the sockets passed by systemd (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES), taken once.
func systemdListeners() []inheritedListener {
	if inheritedCache != nil {
		return inheritedCache
	}
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid != os.Getpid() && !startedByUpgrade() {
		return nil
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var out []inheritedListener
	for i := 0; i < n; i++ {
		fd := 3 + i
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(i))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			continue
		}
		name := ""
		if i < len(names) {
			name = names[i]
		}
		out = append(out, inheritedListener{name: name, ln: ln})
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	inheritedCache = out
	return out
}

// publicListener returns the socket systemd passed with the given name,
// or else the index-th one, or listens on addr.
func publicListener(inherited []inheritedListener, name string, index int, addr string) (net.Listener, error) {
	for _, l := range inherited {
		if l.name == name {
			return l.ln, nil
		}
	}
	if len(inherited) > index {
		return inherited[index].ln, nil
	}
	if len(inherited) > 0 {
		return nil, fmt.Errorf("systemd passed %d sockets, none for %s", len(inherited), name)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// notify sends a state to systemd's notification socket, if any
// (sd_notify(3), without libsystemd).
func notify(state string) error {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
