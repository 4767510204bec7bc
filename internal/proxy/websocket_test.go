package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// echoUpstream is an app whose WebSocket (any path but /up) sends a
// greeting frame in the same write as its 101 answer, so that the proxy
// reads it with the answer's head, then echoes each data frame back
// unmasked. The code of the close frame it gets is sent on closes.
type echoUpstream struct {
	addr   string
	closes chan uint16
}

const greeting = "hello before you ask"

func newEchoUpstream(t testing.TB) *echoUpstream {
	t.Helper()
	e := &echoUpstream{closes: make(chan uint16, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			accept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
		if _, err := conn.Write(append([]byte(head), frame(0x1, []byte(greeting), false)...)); err != nil {
			return
		}
		for {
			op, payload, err := readFrame(brw.Reader)
			if err != nil {
				return
			}
			if op == 0x8 {
				e.closes <- closeCode(payload)
				return
			}
			if _, err := conn.Write(frame(op, payload, false)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	e.addr = addrOf(srv.URL)
	return e
}

func closeCode(payload []byte) uint16 {
	if len(payload) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(payload)
}

// dialWSWith opens a WebSocket through the proxy, sending early in the
// same write as the upgrade request; rcvbuf, if not 0, is the client
// socket's receive buffer, set before it connects.
func dialWSWith(t testing.TB, front, host string, early []byte, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var err error
			c.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return err
		}
	}
	conn, err := d.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// payloadFor is round i's message: its number, then filler up to one of
// the sizes that matter to the relay (a frame's three length forms, and
// frames longer than its 16 KiB buffer).
func payloadFor(i int) []byte {
	sizes := []int{5, 125, 126, 3000, 20000, 70000}
	p := fmt.Appendf(nil, "%d:", i)
	n := max(sizes[i%len(sizes)], len(p))
	return append(p, bytes.Repeat([]byte{byte('a' + i%26)}, n-len(p))...)
}

// TestRelayRoundTrips sends many messages of every size through the
// relay, with early bytes after the handshake both ways and a drain
// in the middle: each message comes back whole and in order, both
// sides get 1001 at a frame boundary, and both directions moved their
// bytes on the sockets themselves (the relay's fast path).
func TestRelayRoundTrips(t *testing.T) {
	old, next := newEchoUpstream(t), newEchoUpstream(t)
	s, front := newProxy(t, Options{}, true)
	r := route("a", old.addr, "a.test")
	r.DrainTimeout = hostproto.Duration{Duration: 50 * time.Millisecond}
	setRoute(t, s, r)

	early := []byte("early bird")
	conn, br := dialWSWith(t, addrOf(front.URL), "a.test", frame(0x2, early, true), 4<<10)
	for _, want := range [][]byte{[]byte(greeting), early} {
		if _, p, err := readFrame(br); err != nil || !bytes.Equal(p, want) {
			t.Fatalf("early bytes: got %q %v, want %q", p, err, want)
		}
	}
	// Small buffers on the client's side of the proxy, and a small receive
	// buffer on the client's (above): the proxy's writes of the longer
	// messages are cut short and wait until the socket can take more.
	if err := relayOnSockets(s.table.Load().byApp("a").up, 4<<10); err != nil {
		t.Fatal(err)
	}

	const rounds, drainAt = 3000, 300
	echoed, closed := 0, false
	for i := 0; i < rounds && !closed; i++ {
		if i == drainAt {
			r.Upstream = next.addr
			setRoute(t, s, r) // the old upstream's WebSockets close in 50ms
		}
		msg := payloadFor(i)
		if _, err := conn.Write(frame(0x2, msg, true)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		op, p, err := readFrame(br)
		switch {
		case err != nil:
			t.Fatalf("round %d: %v", i, err)
		case op == 0x8:
			if i < drainAt {
				t.Fatalf("round %d: closed before the drain", i)
			}
			closed = true
			checkGoingAway(t, conn, br, p)
		case !bytes.Equal(p, msg):
			t.Fatalf("round %d: echo of %d bytes differs (%d bytes, starting %q)", i, len(msg), len(p), p[:min(len(p), 12)])
		default:
			echoed++
		}
	}
	if !closed {
		// Every round came back before the drain timeout passed: the close
		// frame comes next.
		op, p, err := readFrame(br)
		if err != nil || op != 0x8 {
			t.Fatalf("after %d rounds: op %d %v, want a close frame", rounds, op, err)
		}
		checkGoingAway(t, conn, br, p)
	}
	if echoed < drainAt {
		t.Errorf("%d messages echoed, want at least %d", echoed, drainAt)
	}
	select {
	case code := <-old.closes:
		if code != 1001 {
			t.Errorf("the upstream got close code %d, want 1001", code)
		}
	case <-time.After(5 * time.Second):
		t.Error("the upstream got no close frame")
	}
}

// checkGoingAway checks a close frame's payload, answers it as a client
// does, and expects the connection to end with nothing more. The answer
// may find the connection closed already: the upstream ends its side
// on the proxy's close frame, and the proxy then ends the client's.
func checkGoingAway(t *testing.T, conn net.Conn, br *bufio.Reader, payload []byte) {
	t.Helper()
	if code := closeCode(payload); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}
	conn.Write(frame(0x8, payload, true))
	b, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) || len(b) > 0 {
		t.Errorf("after the close frame: %q %v, want the connection to end", b, err)
	}
}

// relayOnSockets checks that u's WebSockets read and write both sides'
// sockets themselves, and sets the send buffer of their client sockets.
func relayOnSockets(u *upstream, sndbuf int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.ws) == 0 {
		return fmt.Errorf("no WebSocket open")
	}
	for c := range u.ws {
		if c.dirs[toClient].raw == nil || c.dirs[toBackend].raw == nil {
			return fmt.Errorf("a WebSocket relays through net.Conn, not its sockets")
		}
		var err error
		c.dirs[toClient].raw.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndbuf)
		})
		if err != nil {
			return fmt.Errorf("send buffer: %w", err)
		}
	}
	return nil
}

// BenchmarkWebSocketRoundTrip times 5-byte messages there and back
// through the relay on loopback, one at a time, as a LiveView
// interaction does; it reports the p50 and p99 round trip.
func BenchmarkWebSocketRoundTrip(b *testing.B) {
	up := newEchoUpstream(b)
	s, front := newProxy(b, Options{}, true)
	setRoute(b, s, route("a", up.addr, "a.test"))
	conn, br := dialWSWith(b, addrOf(front.URL), "a.test", nil, 0)
	conn.SetDeadline(time.Time{})
	if _, _, err := readFrame(br); err != nil {
		b.Fatal(err)
	}
	msg := frame(0x1, []byte("hello"), true)
	var rtts []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := readFrame(br); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2])/1e3, "p50-us")
	b.ReportMetric(float64(rtts[len(rtts)*99/100])/1e3, "p99-us")
}
