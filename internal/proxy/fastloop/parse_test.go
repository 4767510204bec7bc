package fastloop

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
		"forwarded headers":    {"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", false, ""},
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

// FuzzFastHead checks the loop's parser against net/http's: a head it
// accepts, net/http must read the same way (method, host, path, no
// body, no X-Forwarded-*), and the headers it passes on must be
// net/http's less the hop-by-hop ones.
func FuzzFastHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"HEAD /x?y HTTP/1.1\r\nHost: a.test:80\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nKeep-Alive: 5\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: A.TEST\r\ncontent-length: 0\r\nX-A:  b \r\n\r\n",
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
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
			if _, ok := req.Header[k]; ok {
				t.Fatalf("fast parse took a request with %s: %q", k, head)
			}
		}
		var fast []string
		for _, l := range r.lines {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(head[l[0]:l[1]]), "\r\n"), ":")
			fast = append(fast, http.CanonicalHeaderKey(name)+": "+strings.Trim(value, " \t"))
		}
		var std []string
		for k, vs := range req.Header {
			if hopByHop(k) || k == "Content-Length" {
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
			if hopByHop(k) || k == "Content-Length" {
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
