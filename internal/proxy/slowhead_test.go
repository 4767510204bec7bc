package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowHeadOneDeadline: a client that trickles its request head has
// one read-header timeout for all of it, whichever path reads it: from
// the connection's accept for the first request (TLS handshake
// included), from the first byte of the next for a kept-alive one. The
// head runs past the fast loop's 4 KiB buffer, which used to hand it to
// net/http with a timeout of its own, after the loop had started its
// timeout over once it had the first byte: about three in all.
//
// The timeout is long (2s) and the bounds loose, for a loaded machine:
// the connection must be closed after half the timeout, and before 1.5
// times it. A first request pauses 0.9 of the timeout before its first
// byte, so that a timeout started at the first byte (1.9 times) fails
// as a timeout restarted for net/http does (about three times); a
// kept-alive one sends its first byte at once, where the old behaviour
// took 1.9 times.
func TestSlowHeadOneDeadline(t *testing.T) { bothPaths(t, testSlowHeadOneDeadline) }

func testSlowHeadOneDeadline(t *testing.T, fast bool) {
	const timeout = 2 * time.Second
	a := backend(t, "a", true)
	certs := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
	t.Cleanup(certs.Close)
	cases := map[string]struct {
		tls, keepAlive bool
		max            time.Duration
	}{
		"first request":      {max: timeout * 3 / 2},
		"kept-alive":         {keepAlive: true, max: timeout * 3 / 2},
		"first request, TLS": {tls: true, max: timeout * 3 / 2},
	}
	for name, tc := range cases {
		if tc.tls && !fast {
			// net/http alone gives the handshake and the head a timeout
			// each (docs/proxy.md); the loop reads both against one.
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := New(Options{HealthInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conf *tls.Config
			if tc.tls {
				conf = &tls.Config{Certificates: certs.TLS.Certificates, NextProtos: []string{"http/1.1"}}
			}
			pub := NewPublic(s, s, ln, conf, Timeouts{ReadHeader: timeout}, quietLog(), fast)
			go pub.Serve()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				pub.Shutdown(ctx)
			})
			setRoute(t, s, route("a", a.addr(), "a.test"))

			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			start := time.Now()
			var c net.Conn = raw
			br := bufio.NewReader(c)
			switch {
			case tc.tls:
				// The pause is the input: most of the timeout goes
				// before the handshake, which the timeout includes.
				time.Sleep(timeout * 9 / 10)
				tlsConn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
				if err := tlsConn.Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				c, br = tlsConn, bufio.NewReader(tlsConn)
			case tc.keepAlive:
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				start = time.Now()
			default:
				// The pause is the input: most of the timeout goes
				// before the first byte, which the timeout includes.
				time.Sleep(timeout * 9 / 10)
			}
			closed := make(chan time.Duration, 1)
			go func() {
				io.Copy(io.Discard, br)
				closed <- time.Since(start)
			}()
			// The head, a 256-byte line at a time, 4 KiB in 1.8s, and on
			// (up to 24 KiB, under the head limit) until the proxy ends it.
			_, werr := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n")
			tick := time.NewTicker(110 * time.Millisecond)
			defer tick.Stop()
			var took time.Duration
		trickle:
			for i := 0; i < 96; i++ {
				select {
				case took = <-closed:
					break trickle
				case <-tick.C:
				}
				if werr == nil {
					_, werr = fmt.Fprintf(c, "X-Pad-%02d: %s\r\n", i, strings.Repeat("x", 256-12))
				}
			}
			if took == 0 {
				select {
				case took = <-closed:
				case <-time.After(5 * time.Second):
					t.Fatalf("the connection was still open %s after the head began", time.Since(start).Round(time.Millisecond))
				}
			}
			if took < timeout/2 || took > tc.max {
				t.Errorf("the proxy closed a connection trickling its head after %s; want it after %s, before %s (read-header timeout %s)",
					took.Round(time.Millisecond), timeout/2, tc.max, timeout)
			}
		})
	}
}

// TestBareLFHead: a head whose lines end in a bare LF, which net/http
// reads, is answered at once, not after the read-header timeout: the
// fast loop took only CRLF CRLF for its end, and waited for more.
func TestBareLFHead(t *testing.T) { bothPaths(t, testBareLFHead) }

func testBareLFHead(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	c := sendRaw(t, strings.TrimPrefix(front.URL, "http://"), "GET / HTTP/1.1\nHost: a.test\n\n")
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second)) // the read-header timeout is 10s
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within 3s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("answer %s", resp.Status)
	}
}
