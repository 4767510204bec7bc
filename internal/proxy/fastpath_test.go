package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFastHeadRecognised(t *testing.T) {
	tests := map[string]struct {
		head string
		ok   bool
		path string
	}{
		"plain GET":             {"GET /a?b=1 HTTP/1.1\r\nHost: a.test\r\n\r\n", true, "/a"},
		"HEAD":                  {"HEAD / HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n", true, "/"},
		"content-length 0":      {"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n", true, "/"},
		"POST":                  {"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\n", false, ""},
		"body on GET":           {"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n", false, ""},
		"chunked GET":           {"GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n", false, ""},
		"HTTP/1.0":              {"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", false, ""},
		"no host":               {"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", false, ""},
		"two hosts":             {"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", false, ""},
		"bad host":              {"GET / HTTP/1.1\r\nHost: a test\r\n\r\n", false, ""},
		"upgrade":               {"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, ""},
		"connection options":    {"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: X-Secret\r\n\r\n", false, ""},
		"folded header":         {"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\n 2\r\n\r\n", false, ""},
		"bare LF":               {"GET / HTTP/1.1\nHost: a.test\n\n", false, ""},
		"space before colon":    {"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n", false, ""},
		"percent-encoded path":  {"GET /%2e%2e/x HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"absolute form":         {"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"control in value":      {"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x00b\r\n\r\n", false, ""},
		"expect":                {"GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n", false, ""},
		"lower-case method":     {"get / HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"connection close":      {"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", true, "/"},
		"forwarded is replaced": {"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", true, "/"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var r h1Request
			ok := r.parse([]byte(tt.head))
			if ok != tt.ok {
				t.Fatalf("parse = %v, want %v", ok, tt.ok)
			}
			if ok && string(r.path) != tt.path {
				t.Errorf("path = %q, want %q", r.path, tt.path)
			}
		})
	}
}

// FuzzFastHead checks the fast loop's parser against net/http's: a head
// it accepts, net/http must read the same way (method, host, path, no
// body), and the headers it passes on must be net/http's less the
// hop-by-hop and X-Forwarded ones.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"HEAD /x?y HTTP/1.1\r\nHost: a.test:80\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nX-Forwarded-For: 1.1.1.1\r\nKeep-Alive: 5\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: A.TEST\r\ncontent-length: 0\r\nX-A:  b \r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		var r h1Request
		if !r.parse(head) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("fast parse accepted what net/http refuses (%v): %q", err, head)
		}
		if req.Method != string(r.method) || req.Host != string(r.host) || req.URL.Path != string(r.path) {
			t.Fatalf("fast %q %q %q, net/http %q %q %q: %q", r.method, r.host, r.path, req.Method, req.Host, req.URL.Path, head)
		}
		if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
			t.Fatalf("fast parse took a request with a body: %q", head)
		}
		var fast []string
		for _, l := range r.lines {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(head[l[0]:l[1]]), "\r\n"), ":")
			fast = append(fast, http.CanonicalHeaderKey(name)+": "+strings.Trim(value, " \t"))
		}
		var std []string
		for k, vs := range req.Header {
			if skipRequestHeader(k) && k != "Host" || k == "Content-Length" {
				continue
			}
			for _, v := range vs {
				std = append(std, k+": "+v)
			}
		}
		// Host goes on as the client wrote it (checked above).
		fast = slices.DeleteFunc(fast, func(h string) bool {
			return h == "Content-Length: 0" || strings.HasPrefix(h, "Host: ")
		})
		sort.Strings(fast)
		sort.Strings(std)
		if diff := cmp.Diff(std, fast, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("headers passed on (-net/http +fast):\n%s\nhead %q", diff, head)
		}
	})
}

// rawExchange sends raw on a new connection to addr and returns all it
// reads until the server closes or 2s pass.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, raw)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestFastPathWire drives the fast loop over raw connections and checks
// what the upstream got and what the client gets back.
func TestFastPathWire(t *testing.T) {
	var got []string // request heads the upstream saw
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hs []string
		for k, vs := range r.Header {
			hs = append(hs, k+"="+strings.Join(vs, ","))
		}
		sort.Strings(hs)
		got = append(got, r.Method+" "+r.RequestURI+" host="+r.Host+" "+strings.Join(hs, " "))
		switch r.URL.Path {
		case "/up":
		case "/stream":
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Connection", "X-Private")
			w.Header().Set("X-Private", "secret")
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "3")
		case "/none":
			w.WriteHeader(http.StatusNoContent)
		case "/cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "only this")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/nodate":
			w.Header()["Date"] = nil // net/http then sends none
			io.WriteString(w, "hello")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))
	defer up.Close()
	s, front := newProxy(t, Options{})
	setRoute(t, s, route("a", strings.TrimPrefix(up.URL, "http://"), "a.test"))
	addr := addrOf(front.URL)
	got = nil

	t.Run("request headers", func(t *testing.T) {
		got = nil
		out := rawExchange(t, addr, "GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\nX-A: 2\r\nKeep-Alive: 300\r\nProxy-Connection: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\nhello") || !strings.Contains(out, "Connection: close\r\n") {
			t.Errorf("answer:\n%s", out)
		}
		want := []string{"GET /p?q=1 host=a.test X-A=1,2 X-Forwarded-For=127.0.0.1 X-Forwarded-Host=a.test X-Forwarded-Proto=http"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("upstream saw (-want +got):\n%s", diff)
		}
	})
	t.Run("keep-alive and HEAD", func(t *testing.T) {
		out := rawExchange(t, addr, "HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\nGET /none HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		parts := strings.Split(out, "HTTP/1.1 ")
		if len(parts) != 4 || !strings.Contains(parts[1], "Content-Length: 5\r\n") || strings.Contains(parts[1], "hello") ||
			!strings.HasPrefix(parts[2], "204 No Content") || !strings.HasSuffix(parts[3], "hello") {
			t.Errorf("three answers on one connection:\n%s", out)
		}
	})
	t.Run("streamed answer with trailer", func(t *testing.T) {
		out := rawExchange(t, addr, "GET /stream HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		if !strings.Contains(out, "Transfer-Encoding: chunked\r\n") || !strings.Contains(out, "part0;") ||
			!strings.Contains(out, "part2;") || !strings.Contains(out, "\r\n0\r\nX-Sum: 3\r\n\r\n") {
			t.Errorf("streamed answer:\n%q", out)
		}
		if strings.Contains(out, "secret") {
			t.Errorf("a header the upstream named in Connection was passed on:\n%s", out)
		}
	})
	t.Run("upstream cut mid-answer", func(t *testing.T) {
		out := rawExchange(t, addr, "GET /cut HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
		// The client gets the length promised and fewer bytes, then the
		// connection closes: it cannot take the answer as whole, and no
		// second answer follows on the broken connection.
		if !strings.Contains(out, "Content-Length: 100\r\n") || strings.Count(out, "HTTP/1.1 ") != 1 {
			t.Errorf("cut answer:\n%s", out)
		}
	})
	t.Run("date added when the upstream sent none", func(t *testing.T) {
		out := rawExchange(t, addr, "GET /nodate HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
		if strings.Count(out, "\r\nDate: ") != 1 || !strings.Contains(out, " GMT\r\n") {
			t.Errorf("answer:\n%s", out)
		}
	})
	t.Run("unknown host is handed to net/http", func(t *testing.T) {
		out := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 404 ") {
			t.Errorf("answer:\n%s", out)
		}
	})
	t.Run("fast then handed over on one connection", func(t *testing.T) {
		body := "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
		out := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"+body)
		if strings.Count(out, "HTTP/1.1 200 OK") != 2 {
			t.Errorf("answers:\n%s", out)
		}
	})
	fast := front.pub.fast
	if fast.served.Load() < 6 || fast.handedOff.Load() < 2 {
		t.Errorf("fast loop served %d, handed over %d: the tests did not go where they meant to", fast.served.Load(), fast.handedOff.Load())
	}
}

// TestFastPathUpstreamDown: the fast loop answers 502 itself when the
// upstream is gone, and the connection stays usable.
func TestFastPathUpstreamDown(t *testing.T) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{HealthInterval: time.Hour})
	setRoute(t, s, route("a", a.addr(), "a.test"))
	a.Close()
	out := rawExchange(t, addrOf(front.URL), "GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
	if strings.Count(out, "HTTP/1.1 502 Bad Gateway") != 2 {
		t.Errorf("answers:\n%s", out)
	}
	if front.pub.fast.served.Load() != 2 {
		t.Errorf("fast loop served %d requests, want 2", front.pub.fast.served.Load())
	}
}

// FuzzPlainHead checks the fast loop's answer parser against net/http's:
// an answer head it takes as plain, http.ReadResponse must read with the
// same status, length and Connection, and the header lines it passes on
// must be net/http's less the hop-by-hop ones.
func FuzzPlainHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: x\r\n\r\nhello",
		"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 404\r\nContent-Length: 0\r\nKeep-Alive: timeout=5\r\nX-A:  b \r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, toHEAD bool) {
		a, ok := plainHead(bufio.NewReader(bytes.NewReader(data)), toHEAD)
		if !ok {
			return
		}
		method := "GET"
		if toHEAD {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("plain head that net/http refuses (%v): %q", err, data)
		}
		if resp.StatusCode != a.status || resp.Close != a.close {
			t.Fatalf("status %d close %v, net/http %d %v: %q", a.status, a.close, resp.StatusCode, resp.Close, data)
		}
		if a.length > 0 && resp.ContentLength != a.length {
			t.Fatalf("length %d, net/http %d: %q", a.length, resp.ContentLength, data)
		}
		var fast []string
		for _, l := range a.lines {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(data[l[0]:l[1]]), "\r\n"), ":")
			if k := http.CanonicalHeaderKey(name); k != "Content-Length" {
				fast = append(fast, k+": "+strings.Trim(value, " \t"))
			}
		}
		var std []string
		for k, vs := range resp.Header {
			if skipResponseHeader(k) || k == "Content-Length" {
				continue
			}
			for _, v := range vs {
				std = append(std, k+": "+v)
			}
		}
		sort.Strings(fast)
		sort.Strings(std)
		if diff := cmp.Diff(std, fast, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("headers passed on (-net/http +fast):\n%s\nhead %q", diff, data)
		}
	})
}
