package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

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

// loopCounters are the fast loop's counts of requests it answered and
// connections it handed over.
type loopCounters interface {
	Served() int64
	HandedOff() int64
}

// TestWire drives the proxy over raw connections and checks what the
// upstream got and what the client gets back.
func TestWire(t *testing.T) { bothPaths(t, testWire) }

func testWire(t *testing.T, fast bool) {
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
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", strings.TrimPrefix(up.URL, "http://"), "a.test"))
	addr := addrOf(front.URL)
	got = nil

	t.Run("request headers", func(t *testing.T) {
		got = nil
		out := rawExchange(t, addr, "GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\nX-A: 2\r\nKeep-Alive: 300\r\nProxy-Connection: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\nhello") || !strings.Contains(out, "Connection: close\r\n") {
			t.Errorf("answer:\n%s", out)
		}
		want := []string{"GET /p?q=1 host=a.test X-A=1,2 X-Forwarded-For=127.0.0.1 X-Forwarded-Host=a.test X-Forwarded-Proto=http X-Real-Ip=127.0.0.1"}
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
		// The connection closes, with nothing (net/http's path) or with
		// the length promised and fewer bytes (the fast loop's): the
		// client cannot take the answer as whole, and no second answer
		// follows on the broken connection.
		cut := out == "" || strings.Contains(out, "Content-Length: 100\r\n") && strings.Count(out, "HTTP/1.1 ") == 1
		if !cut || strings.HasSuffix(out, "hello") {
			t.Errorf("cut answer:\n%s", out)
		}
		// Counted for its app, though the answer was aborted.
		if n := s.metrics.none.codes[2].Load(); n != 0 {
			t.Errorf("%d answers counted for no app", n)
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
	if loop, ok := front.pub.front.(loopCounters); ok && (loop.Served() < 6 || loop.HandedOff() < 2) {
		t.Errorf("fast loop served %d, handed over %d: the tests did not go where they meant to", loop.Served(), loop.HandedOff())
	}
}

// TestUpstreamGone: the proxy answers 502 itself when the upstream is
// gone (before its health checks say so), and the connection stays
// usable.
func TestUpstreamGone(t *testing.T) { bothPaths(t, testUpstreamGone) }

func testUpstreamGone(t *testing.T, fast bool) {
	a := backend(t, "a", true)
	s, front := newProxy(t, Options{HealthInterval: time.Hour}, fast)
	setRoute(t, s, route("a", a.addr(), "a.test"))
	a.Close()
	out := rawExchange(t, addrOf(front.URL), "GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
	if strings.Count(out, "HTTP/1.1 502 Bad Gateway") != 2 {
		t.Errorf("answers:\n%s", out)
	}
	if loop, ok := front.pub.front.(loopCounters); ok && loop.Served() != 2 {
		t.Errorf("fast loop served %d requests, want 2", loop.Served())
	}
}
