package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// h2Proxy is a proxy with one route, a.test to up, served over TLS with
// HTTP/2 offered, with the fast loop (and so the HTTP/2 fast path) on
// or not; it returns the proxy and its address.
func h2Proxy(t *testing.T, up string, fast bool, opts Options, change ...func(*hostproto.Route)) (*Server, string) {
	t.Helper()
	opts.HealthInterval = time.Hour
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	r := route("a", up, "a.test")
	for _, f := range change {
		f(&r)
	}
	setRoute(t, s, r)
	return s, h2Front(t, s, fast)
}

// noReverseProxy makes the route's ReverseProxy fail the test until
// the function it returns is called: the requests between must take
// the fast path.
func noReverseProxy(t *testing.T, s *Server) (restore func()) {
	rp := s.table.Load().byApp("a").up.rp
	was := rp.Transport
	rp.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("%s %s went through ReverseProxy", r.Method, r.URL)
		return nil, errors.New("not here")
	})
	return func() { rp.Transport = was }
}

// partialUpstream is a holdingUpstream whose answer is the head and
// the first bytes of a longer one.
func partialUpstream(t *testing.T, cut bool) (addr string, arrived, closed chan struct{}) {
	return holdingUpstream(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", cut)
}

// holdingUpstream answers its health checks, and every other request
// with answer (which may be none, or cut short); then it closes the
// connection if cut, or holds it until the proxy closes it. It says on
// arrived when a request came, and on closed when its connection ended.
func holdingUpstream(t *testing.T, answer string, cut bool) (addr string, arrived, closed chan struct{}) {
	t.Helper()
	arrived, closed = make(chan struct{}, 8), make(chan struct{}, 8)
	addr = serveTCP(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/up" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			arrived <- struct{}{}
			io.WriteString(c, answer)
			if !cut {
				io.Copy(io.Discard, br) // until the proxy closes it
			}
			closed <- struct{}{}
			return
		}
	})
	return addr, arrived, closed
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// h2Client speaks HTTP/2 only, and sends only the headers it is given
// (no Accept-Encoding of its own).
func h2Client(t *testing.T) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func h2Do(t *testing.T, c *http.Client, ctx context.Context, method, addr, path string, hdr http.Header) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a.test"
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	return c.Do(req)
}

// clientHeaders are a browser's headers, and a client's word about
// itself that the proxy must drop.
var clientHeaders = http.Header{
	"User-Agent": {"Mozilla/5.0"}, "Accept": {"text/html"}, "Accept-Encoding": {"gzip, br"},
	"Cookie": {"a=1; b=2"}, "X-Custom": {"one", "two"}, "Authorization": {"Bearer x"},
	"X-Forwarded-For": {"6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"},
	"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"evil.test"}, "X_forwarded_for": {"6.6.6.6"},
}

// TestH2FastHeaders: the HTTP/2 fast path sends the upstream the head
// ReverseProxy sends for the same request, and the same headers as the
// fast loop's HTTP/1.1 over TLS: hop-by-hop headers and the client's
// word about itself dropped, the proxy's X-Forwarded-* and X-Real-IP
// set, TE: trailers kept as ReverseProxy keeps it.
func TestH2FastHeaders(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request) []byte {
		if r.Method == "HEAD" {
			return []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
		}
		return answer("ok")
	})
	sFast, fast := h2Proxy(t, up.addr(), true, Options{})
	restore := noReverseProxy(t, sFast)
	_, slow := h2Proxy(t, up.addr(), false, Options{})
	c := h2Client(t)
	for _, method := range []string{"GET", "HEAD"} {
		for _, te := range []bool{false, true} {
			hdr := clientHeaders.Clone()
			if te {
				hdr.Set("Te", "trailers")
			}
			var got []recordedRequest
			for _, addr := range []string{fast, slow} {
				resp, err := h2Do(t, c, context.Background(), method, addr, "/p/a%20b?q=1&r=%2F", hdr)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d", method, resp.StatusCode)
				}
				rs := up.requests()
				got = append(got, rs[len(rs)-1])
			}
			if got[0].Method != method || got[0].Target != got[1].Target || got[0].Method != got[1].Method {
				t.Errorf("%s: fast path sent %s %s, ReverseProxy %s %s", method, got[0].Method, got[0].Target, got[1].Method, got[1].Target)
			}
			if d := cmp.Diff(got[1].Header, got[0].Header); d != "" {
				t.Errorf("%s, te %v: fast path's headers against ReverseProxy's (-want +got):\n%s", method, te, d)
			}
			if got[0].Header.Get("X-Forwarded-For") != "127.0.0.1" || got[0].Header.Get("X-Forwarded-Proto") != "https" ||
				got[0].Header.Get("X-Forwarded-Host") != "a.test" || got[0].Header.Get("Forwarded") != "" {
				t.Errorf("%s: the client's headers about itself: %v", method, got[0].Header)
			}
		}
	}

	// The same request over HTTP/1.1 and TLS, to net/http's path (the
	// fast loop hands a head with underscored client headers over).
	restore()
	rs := up.requests()
	h1 := h1Request(t, up, fast, "/p/a%20b?q=1&r=%2F", clientHeaders)
	if d := cmp.Diff(h1.Header, rs[0].Header); d != "" || h1.Target != rs[0].Target {
		t.Errorf("HTTP/2 fast path against HTTP/1.1 net/http: %s %s (-h1 +h2):\n%s", h1.Target, rs[0].Target, d)
	}
	// And without them, and a target with no escapes, to the fast loop
	// itself.
	hdr := clientHeaders.Clone()
	delete(hdr, "X_forwarded_for")
	defer noReverseProxy(t, sFast)()
	h1 = h1Request(t, up, fast, "/p/x?q=1", hdr)
	resp, err := h2Do(t, c, context.Background(), "GET", fast, "/p/x?q=1", hdr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rs = up.requests()
	if h2 := rs[len(rs)-1]; cmp.Diff(h1.Header, h2.Header) != "" || h1.Target != h2.Target {
		t.Errorf("HTTP/2 fast path against HTTP/1.1 fast loop: %s %s (-h1 +h2):\n%s", h1.Target, h2.Target, cmp.Diff(h1.Header, h2.Header))
	}
}

// h1Request sends GET target with hdr over HTTP/1.1 and TLS to addr,
// and returns the request up got.
func h1Request(t *testing.T, up *rawUpstream, addr, target string, hdr http.Header) recordedRequest {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var head strings.Builder
	head.WriteString("GET " + target + " HTTP/1.1\r\nHost: a.test\r\n")
	hdr.Write(&head)
	head.WriteString("\r\n")
	io.WriteString(tc, head.String())
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP/1.1: %d", resp.StatusCode)
	}
	rs := up.requests()
	return rs[len(rs)-1]
}

// TestH2FastAnswer: the answer comes back as ReverseProxy passes it on:
// hop-by-hop headers and those Connection names dropped, HSTS added on
// a route that asks for it unless the app sent its own, 1xx passed on,
// trailers sent, a body without a length streamed piece by piece.
func TestH2FastAnswer(t *testing.T) {
	next := make(chan struct{})
	up := newRawUpstream(t, func(r *http.Request) []byte {
		switch r.URL.Path {
		case "/hop":
			return []byte("HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok")
		case "/sts":
			return []byte("HTTP/1.1 200 OK\r\nStrict-Transport-Security: " + upstreamSTS + "\r\nContent-Length: 2\r\n\r\nok")
		case "/hints":
			return []byte("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/trailers":
			return []byte("HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 42\r\n\r\n")
		case "/stream":
			return []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
		}
		return answer("ok")
	})
	// /stream's first piece goes out with the head, the rest once the
	// client has read it: a proxy that waited for more would hang.
	up.after = func(r *http.Request) ([]byte, chan<- struct{}) {
		if r.URL.Path != "/stream" {
			return nil, nil
		}
		<-next
		return []byte("6\r\nsecond\r\n0\r\n\r\n"), make(chan struct{})
	}
	s, addr := h2Proxy(t, up.addr(), true, Options{}, func(r *hostproto.Route) { r.HSTS = true })
	noReverseProxy(t, s)
	c := h2Client(t)
	get := func(path string, trace *httptrace.ClientTrace) (*http.Response, string) {
		t.Helper()
		ctx := context.Background()
		if trace != nil {
			ctx = httptrace.WithClientTrace(ctx, trace)
		}
		resp, err := h2Do(t, c, ctx, "GET", addr, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp, string(b)
	}
	resp, _ := get("/hop", nil)
	if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-Kept") != "yes" {
		t.Errorf("/hop: %v", resp.Header)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HSTS %q", got)
	}
	if resp, _ := get("/sts", nil); resp.Header.Values("Strict-Transport-Security")[0] != upstreamSTS || len(resp.Header.Values("Strict-Transport-Security")) != 1 {
		t.Errorf("the app's own HSTS: %v", resp.Header.Values("Strict-Transport-Security"))
	}
	var hints []string
	resp, body := get("/hints", &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}})
	if len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" || resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Link") != "" {
		t.Errorf("/hints: 1xx %q, then %d %q, Link %q", hints, resp.StatusCode, body, resp.Header.Get("Link"))
	}
	if resp, body := get("/trailers", nil); body != "ok" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("/trailers: %q, trailers %v", body, resp.Trailer)
	}

	// A streamed answer: its first piece reaches the client before the
	// app sends the rest.
	resp, err := h2Do(t, c, context.Background(), "GET", addr, "/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("first piece %q: %v", first, err)
	}
	close(next)
	if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "second" {
		t.Errorf("rest %q: %v", rest, err)
	}
}

// TestH2FastUpstreamFails: an upstream that refuses connections is a
// 502 page, one that does not answer in time a 504, and one that closes
// mid-answer cuts the client's stream (a reset, not an answer that
// looks whole).
func TestH2FastUpstreamFails(t *testing.T) {
	c := h2Client(t)
	gone := backend(t, "gone", true)
	sDown, addrDown := h2Proxy(t, gone.addr(), true, Options{})
	noReverseProxy(t, sDown)
	// Health checks run an hour apart: the route stays up while its
	// upstream refuses connections.
	gone.Listener.Close()
	gone.CloseClientConnections()
	resp, err := h2Do(t, c, context.Background(), "GET", addrDown, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "not answering") {
		t.Errorf("upstream down: %d %q", resp.StatusCode, b)
	}

	cut, arrived, closed := partialUpstream(t, true)
	s, addr := h2Proxy(t, cut, true, Options{})
	noReverseProxy(t, s)
	resp, err = h2Do(t, c, context.Background(), "GET", addr, "/cut", nil)
	if err == nil {
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	// The stream is reset, before the head or after it.
	if se := (http2.StreamError{}); !errors.As(err, &se) || se.Code != http2.ErrCodeInternal {
		t.Errorf("a cut answer: %q, %v; want a stream reset", b, err)
	}
	<-arrived
	<-closed
	waitInFlight(t, s, 0)

	hang, arrived2, _ := stallingUpstream(t)
	s2, addr2 := h2Proxy(t, hang, true, Options{UpstreamHeaderTimeout: 200 * time.Millisecond})
	noReverseProxy(t, s2)
	resp, err = h2Do(t, c, context.Background(), "GET", addr2, "/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-arrived2
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("upstream hangs: %d", resp.StatusCode)
	}
}

// TestH2FastClientCancels: a client that resets its stream while the
// upstream has not answered, or while its answer's body comes, frees
// the upstream's connection at once (closed, never back in the pool),
// and the next request is answered on another connection.
func TestH2FastClientCancels(t *testing.T) {
	for name, midBody := range map[string]bool{"before the answer": false, "in the answer's body": true} {
		t.Run(name, func(t *testing.T) {
			up, arrived, closed := stallingUpstream(t)
			if midBody {
				up, arrived, closed = partialUpstream(t, false)
			}
			s, addr := h2Proxy(t, up, true, Options{})
			noReverseProxy(t, s)
			c := h2Client(t)
			for i := range 2 {
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() {
					resp, err := h2Do(t, c, ctx, "GET", addr, "/slow", nil)
					if err == nil {
						_, err = io.ReadAll(resp.Body)
						resp.Body.Close()
					}
					errc <- err
				}()
				select {
				case <-arrived:
				case <-time.After(5 * time.Second):
					t.Fatal("the request never reached the upstream")
				}
				cancel()
				if err := <-errc; !errors.Is(err, context.Canceled) {
					t.Errorf("request %d: %v, want cancelled", i, err)
				}
				select {
				case <-closed:
				case <-time.After(3 * time.Second):
					t.Fatalf("request %d: the upstream connection was still open 3s after the client cancelled", i)
				}
				waitInFlight(t, s, 0)
			}
		})
	}
}

// TestH2FastFallsBack: what the fast path does not take goes through
// ReverseProxy as before: a request body of unknown length is streamed
// whole, and refused past the route's limit (TestH2Plain has the rest).
func TestH2FastFallsBack(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request) []byte { return answer("got " + r.Method) })
	_, addr := h2Proxy(t, up.addr(), true, Options{}, func(r *hostproto.Route) { r.MaxBodyBytes = 1 << 10 })
	c := h2Client(t)
	for _, tc := range []struct {
		body string
		want int
	}{{strings.Repeat("x", 1000), 200}, {strings.Repeat("x", 2000), http.StatusRequestEntityTooLarge}} {
		pr, pw := io.Pipe()
		go func() { io.WriteString(pw, tc.body); pw.Close() }()
		req, _ := http.NewRequest("POST", "https://"+addr+"/", pr) // no length: streamed
		req.Host = "a.test"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("a body of %d: %d, want %d", len(tc.body), resp.StatusCode, tc.want)
		}
	}
	if rs := up.requests(); len(rs) != 1 || rs[0].Body != strings.Repeat("x", 1000) {
		t.Errorf("the upstream got %d requests", len(rs))
	}
}

// TestH2Plain: the requests the fast path takes, and those it leaves
// to ReverseProxy.
func TestH2Plain(t *testing.T) {
	s, err := New(Options{HealthInterval: time.Hour, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plain := func() *http.Request {
		r := httptest.NewRequest("GET", "https://a.test/x?y=1", nil)
		r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
		r.RemoteAddr = "192.0.2.1:5000"
		r.Header.Set("Accept", "*/*")
		return r
	}
	if !s.h2Plain(plain()) {
		t.Fatal("a plain GET is not taken")
	}
	for name, change := range map[string]func(*http.Request){
		"HTTP/1.1":             func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 1 },
		"POST":                 func(r *http.Request) { r.Method = "POST" },
		"OPTIONS":              func(r *http.Request) { r.Method = "OPTIONS" },
		"a body":               func(r *http.Request) { r.ContentLength = 5 },
		"a body, no length":    func(r *http.Request) { r.ContentLength = -1 },
		"Expect":               func(r *http.Request) { r.Header.Set("Expect", "100-continue") },
		"trailers":             func(r *http.Request) { r.Trailer = http.Header{"X-Sum": nil} },
		"a trusted peer":       func(r *http.Request) { r.RemoteAddr = "10.1.2.3:5000" },
		"an IDN host":          func(r *http.Request) { r.Host = "bücher.test" },
		"a host with a space":  func(r *http.Request) { r.Host = "a.test x" },
		"a control in a value": func(r *http.Request) { r.Header.Set("X-A", "a\x01b") },
		"a bad header name":    func(r *http.Request) { r.Header["X A"] = []string{"1"} },
	} {
		r := plain()
		change(r)
		if s.h2Plain(r) {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
}

// TestH2FastStaleBytes: bytes an upstream sends after its answer (a
// second answer nobody asked for) are never taken for the next
// request's answer: the connection that holds them is not reused.
func TestH2FastStaleBytes(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request) []byte { return answer("fresh " + r.URL.Path) })
	up.after = func(r *http.Request) ([]byte, chan<- struct{}) {
		return []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"), make(chan struct{})
	}
	s, addr := h2Proxy(t, up.addr(), true, Options{})
	noReverseProxy(t, s)
	c := h2Client(t)
	for i := range 5 {
		path := fmt.Sprintf("/%d", i)
		resp, err := h2Do(t, c, context.Background(), "GET", addr, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "fresh "+path {
			t.Errorf("%s: got %q", path, b)
		}
	}
}
