package fastloop

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// oneRoute sends every request to one upstream.
type oneRoute string

func (r oneRoute) Route(string, string, bool) (Target, bool) { return Target{Addr: string(r)}, true }
func (oneRoute) Done(Target, *Finished)                      {}

// A connection accepted before a graceful shutdown (an upgrade hands
// over, or the proxy stops) that has not sent its request yet, or is in
// its TLS handshake, is served, not cut: clients retry a request on a
// kept-alive connection the server closed, never on a new one.
func TestShutdownServesNewConnections(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answered")
	}))
	defer upstream.Close()
	// Only for its certificate, for example.com and 127.0.0.1.
	certs := httptest.NewTLSServer(http.NotFoundHandler())
	defer certs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(certs.Certificate())
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[secure]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Router: oneRoute(strings.TrimPrefix(upstream.URL, "http://")),
				ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxAnswerHead: 64 << 10,
				Page: func(int) string { return "" }}
			if secure {
				cfg.TLS = &tls.Config{Certificates: certs.TLS.Certificates, NextProtos: []string{"http/1.1"}}
			}
			s := New(ln, cfg)
			go s.Serve()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			waittest.For(t, "the connection accepted", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return len(s.conns) == 1
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() { s.Shutdown(ctx); close(done) }()
			waittest.For(t, "the shutdown started", s.closing.Load)
			if secure {
				tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: "example.com", NextProtos: []string{"http/1.1"}})
				if err := tc.Handshake(); err != nil {
					t.Fatalf("handshake during the shutdown: %v", err)
				}
				conn = tc
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("request on a connection accepted before the shutdown: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "answered" {
				t.Errorf("answer: %s %q", resp.Status, body)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("the shutdown did not end once the request was answered")
			}
		})
	}
}
