package headers

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClientHeader(t *testing.T) {
	tests := map[string][2]bool{ // name: match, underscored
		"X-Forwarded-For": {true, false}, "x-forwarded-for": {true, false}, "X_Forwarded_For": {true, true},
		"X-Forwarded_For": {true, true}, "X-REAL-IP": {true, false}, "x_real_ip": {true, true},
		"CF-Connecting-IP": {true, false}, "True-Client-IP": {true, false}, "X-Client-IP": {true, false},
		"Forwarded": {true, false}, "Client-IP": {true, false}, "X-Forwarded-Ssl": {true, false},
		"X-Real-IPs": {false, false}, "X-Real": {false, false}, "Accept": {false, false}, "Cookie": {false, false},
		"X-Forwarded-Fox": {false, false}, "X.Real.IP": {false, false}, "": {false, false},
	}
	for name, want := range tests {
		m, u := ClientHeader(name)
		mb, ub := ClientHeader([]byte(name))
		if [2]bool{m, u} != want || [2]bool{mb, ub} != want {
			t.Errorf("ClientHeader(%q) = %v %v (bytes: %v %v), want %v", name, m, u, mb, ub, want)
		}
	}
}

func TestIsHopByHop(t *testing.T) {
	for _, name := range []string{"Connection", "connection", "TE", "Keep-Alive", "proxy-authorization", "Upgrade"} {
		if !IsHopByHop(name) || !IsHopByHop([]byte(name)) {
			t.Errorf("%s is hop-by-hop", name)
		}
	}
	for _, name := range []string{"Content-Length", "Trailers", "T", "Host"} {
		if IsHopByHop(name) {
			t.Errorf("%s is not hop-by-hop", name)
		}
	}
}

// TestForward: what an upstream is told of the client, from a peer
// that is trusted or not.
func TestForward(t *testing.T) {
	trust := Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	tests := map[string]struct {
		remote string
		sent   http.Header
		want   http.Header
	}{
		"untrusted": {"203.0.113.1:5000",
			http.Header{"X-Real-Ip": {"1.1.1.1"}, "X_forwarded_for": {"1.1.1.2"}, "Cf-Connecting-Ip": {"1.1.1.3"}, "Forwarded": {"for=x"}, "Accept": {"*/*"}},
			http.Header{"X-Forwarded-For": {"203.0.113.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"},
				"X-Real-Ip": {"203.0.113.1"}, "Accept": {"*/*"}}},
		"trusted, its X-Real-IP": {"10.1.1.1:5000",
			http.Header{"X-Real-Ip": {"1.1.1.1"}, "X-Forwarded-For": {"1.1.1.1"}, "X_real_ip": {"6.6.6.6"}, "Forwarded": {"for=1.1.1.1"}},
			http.Header{"X-Forwarded-For": {"1.1.1.1, 10.1.1.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"},
				"X-Real-Ip": {"1.1.1.1"}, "Forwarded": {"for=1.1.1.1"}}},
		"trusted, chain through trusted proxies": {"[::1]:5000",
			http.Header{"X-Forwarded-For": {"6.6.6.6, 1.1.1.1", "10.9.9.9"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"www.test"}},
			http.Header{"X-Forwarded-For": {"6.6.6.6, 1.1.1.1, 10.9.9.9, ::1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"www.test"},
				"X-Real-Ip": {"1.1.1.1"}}},
		"trusted, only trusted in the chain": {"10.1.1.1:5000", http.Header{"X-Forwarded-For": {"10.2.2.2"}},
			http.Header{"X-Forwarded-For": {"10.2.2.2, 10.1.1.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"},
				"X-Real-Ip": {"10.2.2.2"}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := &http.Request{RemoteAddr: tt.remote, Host: "a.test", Header: tt.sent}
			h := tt.sent.Clone()
			trust.Forward(h, in)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestForwardFromABalancer: from a trusted balancer, only what it sets
// itself is believed: the client it saw, last in X-Forwarded-For (past
// the trusted hops), its scheme and port. A client's X-Real-IP, Host
// and start of the chain, which an ALB passes on, are not.
func TestForwardFromABalancer(t *testing.T) {
	trust := Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("173.245.48.0/20")}, Balancers: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")}}
	tests := map[string]struct {
		sent, want http.Header
	}{
		"a lying client": {
			http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"443"},
				"X-Real-Ip": {"6.6.6.6"}, "X-Forwarded-Host": {"evil.test"}, "Forwarded": {"for=6.6.6.6"}, "True-Client-Ip": {"6.6.6.6"}, "Accept": {"*/*"}},
			http.Header{"X-Forwarded-For": {"198.51.100.1, 10.77.1.2"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"443"},
				"X-Forwarded-Host": {"a.test"}, "X-Real-Ip": {"198.51.100.1"}, "Accept": {"*/*"}}},
		"through a trusted CDN": {
			http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 173.245.48.9"}, "X-Forwarded-Proto": {"http", "https"}},
			http.Header{"X-Forwarded-For": {"198.51.100.1, 173.245.48.9, 10.77.1.2"}, "X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host": {"a.test"}, "X-Real-Ip": {"198.51.100.1"}}},
		"nothing sent": {http.Header{},
			http.Header{"X-Forwarded-For": {"10.77.1.2"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"}, "X-Real-Ip": {"10.77.1.2"}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := &http.Request{RemoteAddr: "10.77.1.2:5000", Host: "a.test", Header: tt.sent}
			h := tt.sent.Clone()
			trust.Forward(h, in)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsHSTS(t *testing.T) {
	for name, want := range map[string]bool{"Strict-Transport-Security": true, "strict-transport-security": true,
		"STRICT-TRANSPORT-SECURITY": true, "Strict-Transport-Securit": false, "Strict_Transport_Security": false, "Date": false} {
		if IsHSTS(name) != want || IsHSTS([]byte(name)) != want {
			t.Errorf("IsHSTS(%q) = %v, want %v", name, !want, want)
		}
	}
}

// SetHSTS (net/http's path) and WriteHSTS (the fast loop's) add the
// same header to the same answers, and WriteHSTS allocates nothing.
func TestBothPathsAddTheSameHSTS(t *testing.T) {
	const own = "max-age=63072000; includeSubDomains"
	for _, on := range []bool{false, true} {
		for _, appSent := range []string{"", own} {
			h := http.Header{}
			if appSent != "" {
				h.Set(StrictTransportSecurity, appSent)
			}
			SetHSTS(h, on)
			var head bytes.Buffer
			bw := bufio.NewWriter(&head)
			bw.WriteString("HTTP/1.1 200 OK\r\n")
			if appSent != "" {
				bw.WriteString(StrictTransportSecurity + ": " + appSent + "\r\n")
			}
			WriteHSTS(bw, on, appSent != "")
			bw.WriteString("Content-Length: 0\r\n\r\n")
			bw.Flush()
			resp, err := http.ReadResponse(bufio.NewReader(&head), nil)
			if err != nil {
				t.Fatalf("on %v, app's %q: the fast loop's head: %v\n%s", on, appSent, err, head.String())
			}
			want := []string{HSTS}
			switch {
			case appSent != "":
				want = []string{appSent}
			case !on:
				want = nil
			}
			if diff := cmp.Diff(want, h.Values(StrictTransportSecurity)); diff != "" {
				t.Errorf("on %v, app's %q: net/http's (-want +got):\n%s", on, appSent, diff)
			}
			if diff := cmp.Diff(want, resp.Header.Values(StrictTransportSecurity)); diff != "" {
				t.Errorf("on %v, app's %q: the fast loop's (-want +got):\n%s", on, appSent, diff)
			}
		}
	}
	bw := bufio.NewWriterSize(&bytes.Buffer{}, 1<<20)
	if n := testing.AllocsPerRun(100, func() { WriteHSTS(bw, true, false) }); n != 0 {
		t.Errorf("WriteHSTS allocates %v times", n)
	}
}
