package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Front serves s over TLS on loopback, HTTP/2 offered, as Run does
// (certificate aside); it returns the address.
func h2Front(t *testing.T, s *Server, fast bool) string {
	t.Helper()
	certs := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
	t.Cleanup(certs.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: certs.TLS.Certificates, NextProtos: []string{"h2", "http/1.1"}}
	pub := NewPublic(s, s, ln, conf, Timeouts{}, quietLog(), fast)
	go pub.Serve()
	t.Cleanup(func() { pub.srv.Close(); ln.Close() })
	return ln.Addr().String()
}

// h2Routed is a proxy with one route, a.test to a healthy backend,
// served by h2Front; it returns the backend and the address.
func h2Routed(t *testing.T, fast bool) (*testBackend, string) {
	t.Helper()
	a := backend(t, "a", true)
	s, err := New(Options{HealthInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	return a, h2Front(t, s, fast)
}

// h2Outcome is how a server ended one HTTP/2 request: the status of its
// answer, a stream reset, or the whole connection ended (GOAWAY, or
// closed without one: code -1).
type h2Outcome struct {
	status int
	reset  http2.ErrCode
	goAway int64
}

func (o h2Outcome) String() string {
	switch {
	case o.status != 0:
		return fmt.Sprintf("answered %d", o.status)
	case o.reset != 0:
		return "stream reset with " + o.reset.String()
	case o.goAway > 0:
		return "GOAWAY " + http2.ErrCode(o.goAway).String()
	}
	return "connection closed"
}

// h2Request sends one request on a new HTTP/2 connection to addr, its
// header block in one HEADERS frame, written by hand so that a client
// may break the rules, and reports how the server ended it.
func h2Request(t *testing.T, addr, authority string, fields [][2]string) h2Outcome {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q", p)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", authority}}, fields...) {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return h2Outcome{goAway: -1}
			}
			t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				var code int
				fmt.Sscan(f.PseudoValue("status"), &code)
				return h2Outcome{status: code}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return h2Outcome{reset: f.ErrCode}
			}
		case *http2.GoAwayFrame:
			return h2Outcome{goAway: int64(f.ErrCode)}
		}
	}
}

// TestHTTP2ConnectionSpecificHeaders: an HTTP/2 request with a header
// of one HTTP/1.1 connection (RFC 9113 8.2.2), or TE other than
// "trailers", is refused (400, or a stream reset with PROTOCOL_ERROR)
// before anything is forwarded to the app, which speaks HTTP/1.1 and
// could take it for its own (h2spec 8.1.2.2). TE: trailers is served.
func TestHTTP2ConnectionSpecificHeaders(t *testing.T) {
	bothPaths(t, testHTTP2ConnectionSpecificHeaders)
}

func testHTTP2ConnectionSpecificHeaders(t *testing.T, fast bool) {
	a, addr := h2Routed(t, fast)
	for _, f := range [][2]string{{"connection", "keep-alive"}, {"keep-alive", "timeout=5"}, {"proxy-connection", "keep-alive"},
		{"transfer-encoding", "chunked"}, {"upgrade", "websocket"}, {"te", "gzip"}, {"te", "trailers, gzip"}} {
		before := a.served.Load()
		o := h2Request(t, addr, "a.test", [][2]string{f})
		if o.status != http.StatusBadRequest && o.reset != http2.ErrCodeProtocol {
			t.Errorf("%s: %s: %s, want 400 or a reset with PROTOCOL_ERROR", f[0], f[1], o)
		}
		if n := a.served.Load() - before; n != 0 {
			t.Errorf("%s: %s: the app got %d requests", f[0], f[1], n)
		}
	}
	before := a.served.Load()
	if o := h2Request(t, addr, "a.test", [][2]string{{"te", "trailers"}}); o.status != http.StatusOK || a.served.Load() != before+1 {
		t.Errorf("te: trailers: %s, the app got %d requests", o, a.served.Load()-before)
	}
}

// TestHTTP2FrameSize: the proxy announces no frames over 16 KiB, the
// size every HTTP/2 peer must take, and ends the connection with
// FRAME_SIZE_ERROR when a client sends a larger one (h2spec 4.2/3);
// Go's server announced 1 MiB, and took a 20 KiB HEADERS frame.
func TestHTTP2FrameSize(t *testing.T) { bothPaths(t, testHTTP2FrameSize) }

func testHTTP2FrameSize(t *testing.T, fast bool) {
	_, addr := h2Routed(t, fast)
	var big [][2]string
	for i := range 5 {
		big = append(big, [2]string{fmt.Sprintf("x-big%d", i), strings.Repeat("x", 4000)})
	}
	if o := h2Request(t, addr, "a.test", big); o.goAway != int64(http2.ErrCodeFrameSize) {
		t.Errorf("a 20 KiB HEADERS frame: %s, want GOAWAY FRAME_SIZE_ERROR", o)
	}
	if o := h2Request(t, addr, "a.test", big[:3]); o.status != http.StatusOK {
		t.Errorf("a 12 KiB HEADERS frame: %s", o)
	}
}
