package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSmuggling sends the known request smuggling vectors raw to the
// proxy, each followed by an ordinary request that closes the
// connection (so the test waits for the proxy to be done with the
// connection, not for a time). A raw upstream records what arrives. For
// each: the proxy refuses it (an error status or a closed connection,
// nothing forwarded), or the upstream sees exactly the requests the
// client sent, never an extra one: no /smuggled, and every request
// with the Host the proxy routed by.
func TestSmuggling(t *testing.T) { bothPaths(t, testSmuggling) }

// A smuggling vector: what the client sends (HOST is replaced by the
// test's host name), and what the upstream may see if the proxy does
// not refuse it ("METHOD TARGET BODY" lines). refuse says the proxy
// must refuse it; closes, that it must close the connection after it
// (RFC 9112 6.1: framing that could be read two ways).
type smuggleCase struct {
	raw            string
	want           []string
	refuse, closes bool
}

var smuggleCases = map[string]smuggleCase{
	"CL.TE": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n", want: []string{"POST / "}, closes: true},
	"TE.CL": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
		"2c\r\nGET /smuggled HTTP/1.1\r\nHost: HOST\r\nX: 1234\r\n\r\n0\r\n\r\n", want: []string{"POST / GET /smuggled HTTP/1.1\r\nHost: HOST\r\nX: 1234\r\n"}, closes: true},
	"TE xchunked": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n" +
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n", refuse: true},
	"TE value with blanks": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding:  chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []string{"POST / abc"}},
	// The folded line is part of X-A's value (RFC 9112 5.2 lets a server
	// unfold it): one request, framed by its Content-Length.
	"TE on a folded line": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\n", want: []string{"POST / 0\r\n\r\n"}},
	"TE chunked, identity": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n\r\n" +
		"0\r\n\r\n", refuse: true},
	"TE with a tab": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		want: []string{"POST / abc"}},
	"TE space before colon": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n" +
		"0\r\n\r\n", refuse: true},
	"two TE lines": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" +
		"3\r\nabc\r\n0\r\n\r\n", refuse: true},
	"two different CL": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 3\r\nContent-Length: 44\r\n\r\n" +
		"abcGET /smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n", refuse: true},
	"two equal CL":      {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", want: []string{"POST / abc"}},
	"comma-joined CL":   {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 3, 44\r\n\r\nabc", refuse: true},
	"CL with a plus":    {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: +3\r\n\r\nabc", refuse: true},
	"obs-fold":          {raw: "GET / HTTP/1.1\r\nHost: HOST\r\nX-A: a\r\n b\r\n\r\n", want: []string{"GET / "}},
	"bare LF head":      {raw: "GET / HTTP/1.1\nHost: HOST\n\n", want: []string{"GET / "}},
	"bare LF in chunks": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", want: []string{"POST / abc"}},
	// net/http ignores Transfer-Encoding on HTTP/1.0: no body, and the
	// connection ends after it.
	"chunked on HTTP/1.0": {raw: "POST / HTTP/1.0\r\nHost: HOST\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n", want: []string{"POST / "}, closes: true},
	"oversized chunk size": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"fffffffffffffffff\r\nabc\r\n0\r\n\r\n", refuse: true},
	"long chunk extension": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3;" + strings.Repeat("x", 8<<10) + "\r\nabc\r\n0\r\n\r\n", refuse: true},
	"chunk extension": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n",
		want: []string{"POST / abc"}},
	"absolute form, other host": {raw: "GET http://other.test/smuggled HTTP/1.1\r\nHost: HOST\r\n\r\n", refuse: true},
	"absolute form, same host":  {raw: "GET http://HOST/x HTTP/1.1\r\nHost: HOST\r\n\r\n", want: []string{"GET /x "}},
	"pipelined behind a body": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /second HTTP/1.1\r\nHost: HOST\r\n\r\n", want: []string{"POST / abc", "GET /second "}},
	"pipelined behind a chunked body": {raw: "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET /second HTTP/1.1\r\nHost: HOST\r\n\r\n", want: []string{"POST / abc"}, closes: true},
	"pipelined GETs": {raw: "GET /a HTTP/1.1\r\nHost: HOST\r\n\r\nHEAD /b HTTP/1.1\r\nHost: HOST\r\n\r\n",
		want: []string{"GET /a ", "HEAD /b "}},
}

func testSmuggling(t *testing.T, fast bool) {
	s, front := newProxy(t, Options{HealthInterval: time.Hour}, fast)
	i := 0
	for name, tt := range smuggleCases {
		i++
		host := fmt.Sprintf("v%d.test", i)
		up := newRawUpstream(t, func(r *http.Request) []byte { return answer("ok") })
		setRoute(t, s, route(fmt.Sprintf("v%d", i), up.addr(), host))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw := strings.ReplaceAll(tt.raw, "HOST", host)
			codes := sendThenEnd(t, addrOf(front.URL), raw, host)
			var got []string
			ended := false
			for _, r := range up.requests() {
				if r.Target == "/end" {
					ended = true
					continue
				}
				if h := r.Header.Get("X-Forwarded-Host"); h != host {
					t.Errorf("the upstream got a request for host %q: %q", h, r.Raw)
				}
				got = append(got, r.Method+" "+r.Target+" "+r.Body)
			}
			refused := len(got) == 0 && (len(codes) == 0 || codes[0] >= 400)
			if refused {
				return
			}
			if tt.refuse {
				t.Errorf("not refused: the client got %v, the upstream %q", codes, got)
			}
			if tt.closes && (ended || len(codes) > len(got)) {
				t.Errorf("the connection went on after it: the client got %v, the upstream %q and /end: %v", codes, got, ended)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = strings.ReplaceAll(w, "HOST", host)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the upstream got (-want +got):\n%s\n(client got %v)", diff, codes)
			}
		})
	}
}

// sendThenEnd sends raw, then a GET /end that closes the connection, and
// returns the status of every answer read until the connection closed.
func sendThenEnd(t *testing.T, addr, raw, host string) []int {
	t.Helper()
	c := sendRaw(t, addr, raw+"GET /end HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
	defer c.Close()
	br := bufio.NewReader(c)
	var codes []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}
