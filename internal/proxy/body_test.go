package proxy

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBodyLimit: a route's body limit answers 413 for a declared length
// over it before anything goes upstream, and for a chunked body once it
// is crossed; bodies within it go through whole.
func TestBodyLimit(t *testing.T) { bothPaths(t, testBodyLimit) }

func testBodyLimit(t *testing.T, fast bool) {
	up := newRawUpstream(t, func(r *http.Request) []byte { return answer("took it") })
	s, front := newProxy(t, Options{}, fast)
	r := route("a", up.addr(), "a.test")
	r.MaxBodyBytes = 10
	setRoute(t, s, r)
	addr := addrOf(front.URL)
	tests := map[string]struct {
		raw  string
		code int
		body string // what the upstream got; "" if nothing
	}{
		"at the limit":            {"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789", 200, "0123456789"},
		"declared over the limit": {"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\n0123456789a", 413, ""},
		"declared over, expecting 100-continue": {
			"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", 413, ""},
		"chunked within":   {"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", 200, "0123456789"},
		"chunked crossing": {"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n", 413, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(up.requests())
			code, _ := oneExchange(t, addr, tt.raw, "POST")
			var got string
			if reqs := up.requests(); len(reqs) > before {
				got = reqs[len(reqs)-1].Body
			}
			if diff := cmp.Diff([]any{tt.code, tt.body}, []any{code, got}); diff != "" {
				t.Errorf("status and what the upstream got (-want +got):\n%s", diff)
			}
		})
	}
}
