package fastloop

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

func TestFastHeadRecognised(t *testing.T) {
	tests := map[string]struct {
		head string
		ok   bool
		path string
	}{
		"plain GET":            {"GET /a?b=1 HTTP/1.1\r\nHost: a.test\r\n\r\n", true, "/a"},
		"HEAD":                 {"HEAD / HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n", true, "/"},
		"content-length 0":     {"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n", true, "/"},
		"POST":                 {"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\n", false, ""},
		"body on GET":          {"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n", false, ""},
		"chunked GET":          {"GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n", false, ""},
		"HTTP/1.0":             {"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", false, ""},
		"no host":              {"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", false, ""},
		"two hosts":            {"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", false, ""},
		"bad host":             {"GET / HTTP/1.1\r\nHost: a test\r\n\r\n", false, ""},
		"upgrade":              {"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, ""},
		"connection options":   {"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: X-Secret\r\n\r\n", false, ""},
		"folded header":        {"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\n 2\r\n\r\n", false, ""},
		"bare LF":              {"GET / HTTP/1.1\nHost: a.test\n\n", false, ""},
		"space before colon":   {"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n", false, ""},
		"percent-encoded path": {"GET /%2e%2e/x HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"absolute form":        {"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"control in value":     {"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x00b\r\n\r\n", false, ""},
		"expect":               {"GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n", false, ""},
		"lower-case method":    {"get / HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		"connection close":     {"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", true, "/"},
		"forwarded headers":    {"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", true, "/"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var r request
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

// TestClientHeadersLeftOut: headers about the client, however spelt and
// however many, are not among the lines the loop passes on, and are
// noted (for a trusted peer's request to be handed over); the others
// are passed on.
func TestClientHeadersLeftOut(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: a.test\r\nX-Real-IP: 1.1.1.1\r\nx-real-ip: 1.1.1.2\r\nX_REAL_IP: 1.1.1.3\r\n" +
		"X-Client-IP: 1.1.1.4\r\nTrue-Client-IP: 1.1.1.5\r\nCF-Connecting-IP: 1.1.1.6\r\nX_Forwarded_For: 1.1.1.7\r\n" +
		"X-Forwarded_For: 1.1.1.8\r\nx-forwarded-for: 1.1.1.9\r\nFORWARDED: for=1.1.1.10\r\nX-Forwarded-Proto: https\r\n" +
		"X-Real-IPs: kept\r\nX-Client: kept\r\nAccept: kept\r\n\r\n"
	var r request
	if !r.parse([]byte(head)) {
		t.Fatal("not recognised")
	}
	var passed []string
	for _, l := range r.lines {
		passed = append(passed, strings.TrimSuffix(head[l[0]:l[1]], "\r\n"))
	}
	want := []string{"Host: a.test", "X-Real-IPs: kept", "X-Client: kept", "Accept: kept"}
	if diff := cmp.Diff(want, passed); diff != "" || !r.client {
		t.Errorf("lines passed on (-want +got):\n%s\nclient headers noted: %v", diff, r.client)
	}
	if !r.parse([]byte("GET / HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n")) || r.client {
		t.Errorf("a head without client headers: client %v", r.client)
	}
}

// FuzzFastHead checks the loop's parser against net/http's: a head it
// accepts, net/http must read the same way (method, host, path, no
// body), it must see headers about the client where net/http does, and
// the headers it passes on must be net/http's less the hop-by-hop ones
// and those about the client.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"HEAD /x?y HTTP/1.1\r\nHost: a.test:80\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nKeep-Alive: 5\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: A.TEST\r\ncontent-length: 0\r\nX-A:  b \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test\r\nX-Real-IP: 1.2.3.4\r\nx_forwarded_for: 5.6.7.8\r\nCF-Connecting-IP: 9.9.9.9\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		var r request
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
		client := false
		for k := range req.Header {
			if c, _ := headers.ClientHeader(k); c {
				client = true
			}
		}
		if client != r.client {
			t.Fatalf("fast parse saw client headers %v, net/http %v: %q", r.client, client, head)
		}
		var fast []string
		for _, l := range r.lines {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(head[l[0]:l[1]]), "\r\n"), ":")
			fast = append(fast, http.CanonicalHeaderKey(name)+": "+strings.Trim(value, " \t"))
		}
		var std []string
		for k, vs := range req.Header {
			if c, _ := headers.ClientHeader(k); c || headers.IsHopByHop(k) || k == "Content-Length" {
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

// FuzzPlainHead checks the loop's answer parser against net/http's:
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
		head, err := peekHead(bufio.NewReader(bytes.NewReader(data)))
		if err != nil || head == nil {
			return
		}
		a, ok := parsePlain(head, toHEAD)
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
			if headers.IsHopByHop(k) || k == "Content-Length" {
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

// FuzzHeadEnd checks where the loop takes a head to end, looked for in
// one go and in two reads, against the plain reading: the first empty
// line, "\n\n" or "\n\r\n".
func FuzzHeadEnd(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\nHost: a\n\nrest", "\n\n", "\r\n\r\n", "a\r\nb\n\r\nc"} {
		f.Add([]byte(s), uint(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint) {
		want := -1
		for i := 0; i < len(b); i++ {
			if b[i] != '\n' {
				continue
			}
			if i+1 < len(b) && b[i+1] == '\n' {
				want = i + 2
				break
			}
			if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
				want = i + 3
				break
			}
		}
		if got := headEnd(b, 0); got != want {
			t.Fatalf("headEnd(%q) = %d, want %d", b, got, want)
		}
		c := int(cut % uint(len(b)+1))
		if headEnd(b[:c], 0) < 0 {
			if got := headEnd(b, c); got != want {
				t.Fatalf("headEnd(%q) after a read of %d = %d, want %d", b, c, got, want)
			}
		}
	})
}

// TestLongHead: a head longer than the loop's buffer is read whole and
// handed over, what came after it too; one longer than net/http takes
// is handed over past its limit (for net/http's 431).
func TestLongHead(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + strings.Repeat("x", 6<<10) + "\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(head+"GET /next HTTP/1.1\r\n"), 4<<10)
	if h, err := peekHead(br); h != nil || err != nil {
		t.Fatalf("peekHead of a long head: %q, %v", h, err)
	}
	got, err := readLongHead(br, 64<<10)
	if err != nil || !strings.HasPrefix(string(got), head) {
		t.Fatalf("readLongHead: %d bytes, %v", len(got), err)
	}
	rest, _ := io.ReadAll(br)
	if string(got[len(head):])+string(rest) != "GET /next HTTP/1.1\r\n" {
		t.Errorf("after the head: %q then %q", got[len(head):], rest)
	}
	endless := bufio.NewReaderSize(strings.NewReader("GET / HTTP/1.1\r\nX: "+strings.Repeat("x", 64<<10)), 4<<10)
	peekHead(endless)
	got, err = readLongHead(endless, 8<<10)
	if err != nil || len(got) <= 12<<10 || len(got) > 16<<10 {
		t.Errorf("readLongHead of an endless head, limit 8 KiB: %d bytes, %v", len(got), err)
	}
}

// BenchmarkParseHead: the loop's parser on a browser's request head
// (docs/benchmarks.md: the header policy costs it nothing measurable).
func BenchmarkParseHead(b *testing.B) {
	head := []byte("GET /assets/app.js?v=3 HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0\r\n" +
		"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nReferer: https://shop.example.com/\r\n" +
		"Connection: keep-alive\r\nCookie: _shop_key=SFMyNTY.g3QAAAABbQAAAAtfY3NyZl90b2tlbm0AAAAYb2xkX3Rva2Vu\r\nSec-Fetch-Dest: script\r\n" +
		"Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\nCache-Control: no-cache\r\n\r\n")
	var r request
	for b.Loop() {
		if !r.parse(head) {
			b.Fatal("not parsed")
		}
	}
}
