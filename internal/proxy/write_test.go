package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// floodingUpstream answers every request (but its health checks) with
// more than a client's buffers hold: a 1 GiB answer, or, to an upgrade,
// WebSocket frames without end. It writes until a write fails (at most
// 1 GiB, 20 s), and then says so on closed.
func floodingUpstream(t *testing.T) (addr string, closed chan struct{}) {
	t.Helper()
	closed = make(chan struct{}, 8)
	const total = 1 << 30
	addr = serveTCP(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/up" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		piece := make([]byte, 64<<10)
		if req.Header.Get("Upgrade") != "" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			piece = frame(0x2, piece[:60<<10], false)
		} else {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", total)
		}
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for sent := 0; sent < total; sent += len(piece) {
			if _, err := c.Write(piece); err != nil {
				closed <- struct{}{}
				return
			}
		}
	})
	return addr, closed
}

// TestClientStopsReading: a client that stops reading a large answer,
// or a WebSocket, is cut off after the write timeout: the upstream
// connection is closed and nothing stays in flight or open.
func TestClientStopsReading(t *testing.T) { bothPaths(t, testClientStopsReading) }

func testClientStopsReading(t *testing.T, fast bool) {
	addr, closed := floodingUpstream(t)
	s, front := newProxy(t, Options{HealthInterval: time.Hour, WriteTimeout: 300 * time.Millisecond}, fast)
	setRoute(t, s, route("a", addr, "a.test"))
	tests := map[string]string{
		"large answer": "GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"WebSocket": "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(mustAddrPort(t, addrOf(front.URL))))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadBuffer(4 << 10)
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing from here on.
			start := time.Now()
			select {
			case <-closed:
				t.Logf("upstream connection closed after %s", time.Since(start).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream connection was still open after 10s of a client that does not read")
			}
			waitInFlight(t, s, 0)
			if strings.HasPrefix(name, "WebSocket") {
				waitOpenWebSockets(t, s, 0)
			}
		})
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
