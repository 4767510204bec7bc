package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/waittest"
)

// addressHeader tells, independently of the proxy's own list, whether
// an upstream took a header for one that names the client or how it
// came: in any case, and with underscores for dashes, as CGI-style
// servers read them (X_Forwarded_For becomes HTTP_X_FORWARDED_FOR).
func addressHeader(name string) bool {
	switch strings.ReplaceAll(strings.ToLower(name), "_", "-") {
	case "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip",
		"x-client-ip", "true-client-ip", "cf-connecting-ip", "client-ip", "x-forwarded-port", "x-forwarded-ssl":
		return true
	}
	return false
}

// forgedHead is what a lying client adds to its request head: every
// address header, some twice, in several spellings.
const forgedHead = "X-Real-IP: 203.0.113.1\r\nx-real-ip: 203.0.113.2\r\nX-Client-IP: 203.0.113.3\r\n" +
	"True-Client-IP: 203.0.113.4\r\nCF-Connecting-IP: 203.0.113.5\r\ncf-connecting-ip: 203.0.113.6\r\n" +
	"X_Forwarded_For: 203.0.113.7\r\nX-Forwarded_For: 203.0.113.8\r\nx_real_ip: 203.0.113.9\r\n" +
	"Client-IP: 203.0.113.11\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Ssl: on\r\n"

// TestClientAddressHeaders: whatever a client that is not a trusted
// proxy says about its address, the app sees only the address the
// proxy saw, whether the fast loop (a GET) or net/http (a POST) serves
// the request; a trusted proxy's own headers are kept. It sends raw
// heads, so that case and spelling reach the proxy as written.
func TestClientAddressHeaders(t *testing.T) { bothPaths(t, testClientAddressHeaders) }

func testClientAddressHeaders(t *testing.T, fast bool) {
	seen := make(chan []string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			return
		}
		var got []string
		for k, vs := range r.Header {
			if addressHeader(k) {
				got = append(got, k+": "+strings.Join(vs, " | "))
			}
		}
		sort.Strings(got)
		seen <- got
	}))
	defer up.Close()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	proxied := "X-Forwarded-For: 198.51.100.1, 198.51.100.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: www.test\r\n"
	untrusted := []string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: a.test", "X-Forwarded-Proto: http", "X-Real-Ip: 127.0.0.1"}
	// What a client sends an ALB, which passes it on and adds its own.
	throughALB := forgedHead + "Forwarded: for=203.0.113.10\r\nX-Forwarded-Host: evil.test\r\n" +
		"X-Forwarded-For: 203.0.113.12, 198.51.100.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n"
	tests := map[string]struct {
		trusted, balancers []netip.Prefix
		sent               string
		want               []string
	}{
		"untrusted, forged":                 {nil, nil, forgedHead, untrusted},
		"untrusted, forged and X-Forwarded": {nil, nil, forgedHead + proxied + "Forwarded: for=203.0.113.10\r\n", untrusted},
		"untrusted, nothing sent":           {nil, nil, "", untrusted},
		// A trusted proxy's headers are its own; the spellings with
		// underscores no proxy writes, only a client behind it could.
		"trusted proxy": {loopback, nil, "X-Real-IP: 198.51.100.9\r\nCF-Connecting-IP: 198.51.100.9\r\nX_Forwarded_For: 203.0.113.7\r\n" + proxied,
			[]string{"Cf-Connecting-Ip: 198.51.100.9", "X-Forwarded-For: 198.51.100.1, 198.51.100.2, 127.0.0.1",
				"X-Forwarded-Host: www.test", "X-Forwarded-Proto: https", "X-Real-Ip: 198.51.100.9"}},
		// Without X-Real-IP from it, the client is the last address in
		// the chain that is not a trusted proxy.
		"trusted proxy, no X-Real-IP": {loopback, nil, "X-Forwarded-For: 198.51.100.1, 127.0.0.5\r\n",
			[]string{"X-Forwarded-For: 198.51.100.1, 127.0.0.5, 127.0.0.1", "X-Forwarded-Host: a.test",
				"X-Forwarded-Proto: http", "X-Real-Ip: 198.51.100.1"}},
		"other trusted network": {[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, nil, forgedHead, untrusted},
		// A balancer (an ALB, hoist's twin) is trusted with what it sets
		// itself: the client it saw, at the end of X-Forwarded-For, the
		// scheme and port. What the client wrote is dropped, the start of
		// X-Forwarded-For included: through the balancer a client could
		// otherwise name itself, and the host it asked for.
		"trusted balancer": {nil, loopback, throughALB,
			[]string{"X-Forwarded-For: 198.51.100.1, 127.0.0.1", "X-Forwarded-Host: a.test", "X-Forwarded-Port: 443",
				"X-Forwarded-Proto: https", "X-Real-Ip: 198.51.100.1"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, front := newProxy(t, Options{TrustedProxies: tt.trusted, TrustedBalancers: tt.balancers}, fast)
			setRoute(t, s, route("a", up.URL[len("http://"):], "a.test"))
			addr := strings.TrimPrefix(front.URL, "http://")
			for _, method := range []string{"GET", "POST"} {
				body := ""
				if method == "POST" {
					body = "Content-Length: 1\r\n\r\nx"
				} else {
					body = "\r\n"
				}
				raw := fmt.Sprintf("%s /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n%s%s", method, tt.sent, body)
				if code, _ := oneExchange(t, addr, raw, method); code != http.StatusOK {
					t.Fatalf("%s: %d", method, code)
				}
				if diff := cmp.Diff(tt.want, <-seen); diff != "" {
					t.Errorf("%s: the app saw (-want +got):\n%s", method, diff)
				}
			}
			// The GETs from untrusted clients are the fast loop's own: it
			// drops what they forged itself rather than handing them over.
			// (It counts a request just after its answer is out.)
			peerTrusted := len(tt.balancers) > 0 || len(tt.trusted) > 0 && tt.trusted[0].Contains(netip.MustParseAddr("127.0.0.1"))
			if loop, ok := front.pub.front.(loopCounters); ok && !peerTrusted {
				waittest.For(t, "the fast loop to count the GET", func() bool { return loop.Served() == 1 })
				if loop.HandedOff() != 1 {
					t.Errorf("fast loop handed %d connections over, want the POST's", loop.HandedOff())
				}
			}
		})
	}
}

// TestClientAddressHeadersUpgrade: the WebSocket relay's handshake, a
// path of its own, tells the app the same as the others.
func TestClientAddressHeadersUpgrade(t *testing.T) { bothPaths(t, testClientAddressHeadersUpgrade) }

func testClientAddressHeadersUpgrade(t *testing.T, fast bool) {
	up := newRawUpstream(t, func(*http.Request) []byte {
		return []byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n") // refused: the handshake is all this test needs
	})
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", up.addr(), "a.test"))
	raw := "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + forgedHead + "\r\n"
	if code, _ := oneExchange(t, strings.TrimPrefix(front.URL, "http://"), raw, "GET"); code != http.StatusForbidden {
		t.Fatalf("upgrade: %d", code)
	}
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("the app got %d requests", len(reqs))
	}
	var got []string
	for k, vs := range reqs[0].Header {
		if addressHeader(k) {
			got = append(got, k+": "+strings.Join(vs, " | "))
		}
	}
	sort.Strings(got)
	want := []string{"X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: a.test", "X-Forwarded-Proto: http", "X-Real-Ip: 127.0.0.1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the app saw (-want +got):\n%s", diff)
	}
}
