package proxy

import (
	"bufio"
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/certs"
)

// A connection accepted before a graceful shutdown (an upgrade hands
// over, or the proxy stops) that has not sent its request yet, or is in
// its TLS handshake, is served, not cut: clients retry a request on a
// kept-alive connection the server closed, never on a new one.
func TestShutdownServesNewConnections(t *testing.T) {
	a := backend(t, "a", true)
	s, err := New(Options{HealthInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cm, err := certs.New(certs.Options{Storage: t.TempDir(), Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	r := route("a", a.addr(), "a.test")
	setRoute(t, s, r)
	if err := cm.Manage(context.Background(), []string{"a.test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the certificate", func() bool { return cm.Has("a.test") })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cm.InternalRoot())
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[secure]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			pub := NewPublicHTTP(s, s, ln, Timeouts{}, quietLog())
			if secure {
				pub = NewPublicHTTPS(s, ln, cm.TLSConfig(), Timeouts{}, quietLog())
			}
			go pub.Serve()
			var conn net.Conn
			conn, err = net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			waitFor(t, "the connection accepted", func() bool {
				pub.fast.mu.Lock()
				defer pub.fast.mu.Unlock()
				return len(pub.fast.conns) == 1
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() { pub.Shutdown(ctx); close(done) }()
			waitFor(t, "the shutdown started", pub.fast.closing.Load)
			if secure {
				tc := stdtls.Client(conn, &stdtls.Config{RootCAs: roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
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
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a ") {
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

// waitFor polls cond, a state of the code under test, for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
