package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// RunOptions configure the long-running proxy.
type RunOptions struct {
	HTTP    string // public listen address, like :80
	HTTPS   string // public TLS address, like :443; used when Options.Certs is set
	Control string // unix socket path
	Metrics string // loopback address for /metrics; "" for none
	Options
	Log *slog.Logger
}

// Run serves until ctx ends, then shuts down gracefully. It takes its
// public listener from systemd (socket activation) when there is one, so
// that a restart of the proxy never closes the listening socket, and
// tells systemd when it is ready (Type=notify).
func Run(ctx context.Context, o RunOptions) error {
	s, err := New(o.Options)
	if err != nil {
		return err
	}
	ln, err := publicListener(o.HTTP, 0)
	if err != nil {
		return err
	}
	var handler http.Handler = s
	if o.Certs != nil {
		handler = o.Certs.HTTPHandler(s) // answers HTTP-01 challenges
	}
	pub := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second, // no slowloris
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	os.Remove(o.Control)
	cl, err := net.Listen("unix", o.Control)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(o.Control, 0o600); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ctl := &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 4)
	go func() { errc <- pub.Serve(ln) }()
	var sec *http.Server
	if o.Certs != nil {
		tln, err := publicListener(o.HTTPS, 1)
		if err != nil {
			return err
		}
		sec = &http.Server{
			Handler: s, TLSConfig: o.Certs.TLSConfig(),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
			ErrorLog: pub.ErrorLog,
		}
		go func() { errc <- sec.ServeTLS(tln, "", "") }()
	}
	go func() { errc <- ctl.Serve(cl) }()
	var met *http.Server
	if o.Metrics != "" {
		ml, err := net.Listen("tcp", o.Metrics)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		met = &http.Server{Handler: s.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- met.Serve(ml) }()
	}
	notify("READY=1")
	o.Log.Info("proxy ready", "http", ln.Addr().String(), "control", o.Control)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	notify("STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctl.Shutdown(sctx)
	if sec != nil {
		sec.Shutdown(sctx)
	}
	if met != nil {
		met.Shutdown(sctx)
	}
	return pub.Shutdown(sctx)
}

// publicListener returns the index-th socket systemd passed
// (LISTEN_FDS: 80 first, then 443), or listens on addr.
func publicListener(addr string, index int) (net.Listener, error) {
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid == os.Getpid() {
		if n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS")); n > index {
			f := os.NewFile(uintptr(3+index), "listen-fd")
			ln, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("systemd socket: %w", err)
			}
			return ln, nil
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// notify sends a state to systemd's notification socket, if any.
func notify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
