// Package headers is the edge proxy's header policy, in one place for
// every path a request takes through it: net/http's (internal/proxy),
// the fast loop's (internal/proxy/fastloop), which writes heads by
// hand, and the WebSocket relay. It says which headers belong to one
// connection and are never passed on, the Strict-Transport-Security
// the proxy adds, and which headers tell an app who its client is and
// how it came, with what the proxy sets in them.
//
// A new rule about a header goes here; each path only applies it.
package headers

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// HSTS is the Strict-Transport-Security the proxy adds to HTTPS
// answers of a route with proxy.hsts, when the app sent none of its
// own: a year, no subdomains (the app may say more itself).
const HSTS = "max-age=31536000"

// StrictTransportSecurity is HSTS's header, in canonical form.
const StrictTransportSecurity = "Strict-Transport-Security"

const hstsLower = "strict-transport-security"

// hstsLine is HSTS as the fast loop writes it in a head.
const hstsLine = StrictTransportSecurity + ": " + HSTS + "\r\n"

// The proxy adds its HSTS to an answer when the route asks for it (on:
// proxy.hsts, and the request came over TLS) and the answer has none of
// its own (has): an app's own (a longer max-age, includeSubDomains) is
// kept, never doubled. SetHSTS and WriteHSTS are that rule on each path.
func addsHSTS(on, has bool) bool { return on && !has }

// SetHSTS adds the proxy's HSTS to h, an answer's header on net/http's
// path, which counts an empty one as none.
func SetHSTS(h http.Header, on bool) {
	if addsHSTS(on, h.Get(StrictTransportSecurity) != "") {
		h.Set(StrictTransportSecurity, HSTS)
	}
}

// WriteHSTS writes the proxy's HSTS line into a head the fast loop
// writes by hand; has says the answer has the header (IsHSTS of one of
// its names). It allocates nothing.
func WriteHSTS(w *bufio.Writer, on, has bool) {
	if addsHSTS(on, has) {
		w.WriteString(hstsLine)
	}
}

// IsHSTS reports whether name, in any case, is StrictTransportSecurity:
// an answer that has one keeps it, and gets no HSTS of the proxy's.
func IsHSTS[T ~string | ~[]byte](name T) bool {
	return len(name) == len(hstsLower) && fold(name, hstsLower, false)
}

// HopByHop are the headers of one connection (RFC 9110 7.6.1), in
// canonical form: never passed on between client and upstream, nor are
// the headers that Connection names.
var HopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

var hopByHop = func() []string {
	lower := make([]string, len(HopByHop))
	for i, h := range HopByHop {
		lower[i] = strings.ToLower(h)
	}
	return lower
}()

// hopByLength and clientByLength are hopByHop and clientHeaders by the
// length of their names: the fast loop asks about every header line of
// a request, and compares each with the few names of its length.
var hopByLength, clientByLength = byLength(hopByHop), byLength(clientHeaders)

func byLength(names []string) (by [32][]string) {
	for _, n := range names {
		by[len(n)] = append(by[len(n)], n) // all shorter than 32
	}
	return by
}

// IsHopByHop reports whether name, in any case, is one of HopByHop.
func IsHopByHop[T ~string | ~[]byte](name T) bool {
	if len(name) >= len(hopByLength) {
		return false
	}
	for _, h := range hopByLength[len(name)] {
		if fold(name, h, false) {
			return true
		}
	}
	return false
}

// The headers the proxy sets on every request it passes on.
const (
	ForwardedFor   = "X-Forwarded-For"   // the chain of addresses, ending with the proxy's peer
	ForwardedProto = "X-Forwarded-Proto" // http or https, as the client came
	ForwardedHost  = "X-Forwarded-Host"  // the Host the client asked for
	RealIP         = "X-Real-Ip"         // the client's address alone (Phoenix's remote_ip, nginx's realip)
	ForwardedPort  = "X-Forwarded-Port"  // the port the client came to: kept from a trusted proxy or balancer
)

// clientHeaders are the headers that frameworks and libraries read as
// the client's address or the way it came (in lower case): what a
// client writes in them, it could be believed. From a peer that is not
// a trusted proxy they are all dropped, and the proxy sets the four
// above itself.
var clientHeaders = []string{
	// The client's address.
	"x-forwarded-for", "forwarded", "x-real-ip", "x-client-ip", "client-ip", "true-client-ip",
	"cf-connecting-ip", "fastly-client-ip", "x-cluster-client-ip", "x-original-forwarded-for",
	"x-forwarded",
	// How it came: scheme, host, port, path prefix (Rack, Symfony,
	// Spring, ASP.NET read these).
	"x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
	"x-forwarded-ssl", "x-forwarded-scheme", "x-url-scheme", "front-end-https", "x-forwarded-server",
}

// ClientHeader reports whether name is one of the headers that say who
// the client is or how it came, in any case, and also with underscores
// for dashes (underscored): CGI-style servers and the frameworks on them
// (Rack, PHP, WSGI) read X_Forwarded_For as X-Forwarded-For.
func ClientHeader[T ~string | ~[]byte](name T) (match, underscored bool) {
	if len(name) >= len(clientByLength) {
		return false, false
	}
	for _, h := range clientByLength[len(name)] {
		if fold(name, h, true) {
			for i := 0; i < len(name); i++ {
				if name[i] == '_' {
					return true, true
				}
			}
			return true, false
		}
	}
	return false, false
}

// fold compares ASCII name with lower-case h, ignoring case, and, if
// dashes, taking '_' in name for '-'.
func fold[T ~string | ~[]byte](name T, h string, dashes bool) bool {
	for i := 0; i < len(h); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' && dashes {
			c = '-'
		}
		if c != h[i] {
			return false
		}
	}
	return true
}

// Trust is the networks of the proxies in front of this one whose
// headers about the client are kept: an address they say is believed.
type Trust struct {
	// Proxies are trusted with every header about the client: proxies
	// that set or remove each of them themselves (a CDN's, one's own).
	Proxies []netip.Prefix
	// Balancers are trusted with the three an ALB sets, and no other:
	// X-Forwarded-For, to which it appends the client it saw, and
	// X-Forwarded-Proto and -Port, which it replaces. It passes on every
	// other header as the client sent it (X-Real-IP, X-Forwarded-Host,
	// Forwarded...), and the client's own start of X-Forwarded-For:
	// those are dropped. hoist trusts the balancer it provisioned so.
	Balancers []netip.Prefix
}

// Contains reports whether ip (an address, as in RemoteAddr without its
// port) is a trusted proxy's or balancer's.
func (t Trust) Contains(ip string) bool {
	p, b := t.of(ip)
	return p || b
}

// of reports whether ip is a trusted proxy's, or a trusted balancer's.
func (t Trust) of(ip string) (proxy, balancer bool) {
	if len(t.Proxies) == 0 && len(t.Balancers) == 0 {
		return false, false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false, false
	}
	a = a.Unmap()
	in := func(ps []netip.Prefix) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if in(t.Proxies) {
		return true, false
	}
	return false, in(t.Balancers)
}

// balancerKeeps are the client headers kept from a trusted balancer.
var balancerKeeps = []string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"}

// Forward sets the client's headers on h, the header of a request to an
// upstream made from in (a copy of in's, less hop-by-hop headers). From
// a peer that is not trusted, every client header is dropped and the
// proxy's own set: X-Forwarded-For and X-Real-IP the peer's address,
// X-Forwarded-Proto and -Host as the request came. From a trusted
// proxy, what it set is kept, X-Forwarded-For with the peer appended,
// X-Real-IP, when it set none, the last address of that chain that is
// not a trusted proxy's; only the underscored spellings, which no proxy
// writes and one passes on from a client behind it, are dropped. From a
// trusted balancer, X-Forwarded-Proto and -Port are kept, and of its
// X-Forwarded-For the part from the last address that is not trusted
// (the client the first trusted hop saw) on, with the peer appended;
// X-Real-IP is that client, X-Forwarded-Host the Host asked for.
func (t Trust) Forward(h http.Header, in *http.Request) {
	ip := PeerIP(in.RemoteAddr)
	trusted, balancer := t.of(ip)
	for k := range h {
		match, underscored := ClientHeader(k)
		if !match {
			continue
		}
		if underscored || !trusted && !(balancer && slices.Contains(balancerKeeps, strings.ToLower(k))) {
			delete(h, k)
		}
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if !trusted && !balancer {
		set(h, ip, proto, in.Host, ip)
		return
	}
	chain := ip
	if prior := in.Header[ForwardedFor]; len(prior) > 0 {
		chain = strings.Join(prior, ", ") + ", " + ip
	}
	if p := in.Header.Get(ForwardedProto); p == "http" || p == "https" {
		proto = p
	}
	if balancer {
		// What the balancer's client wrote before the address the
		// balancer saw is the client's word; the balancer's scheme and
		// port are the last it sent, should it have added them.
		if ps := in.Header[ForwardedProto]; len(ps) > 0 {
			proto = "http"
			if ps[len(ps)-1] == "https" {
				proto = "https"
			}
		}
		if ps := in.Header[ForwardedPort]; len(ps) > 0 {
			h[ForwardedPort] = ps[len(ps)-1:]
		}
		chain = t.verified(chain)
		set(h, chain, proto, in.Host, t.client(chain))
		return
	}
	host := in.Host
	if fh := in.Header.Get(ForwardedHost); fh != "" {
		host = fh
	}
	real := in.Header.Get(RealIP)
	if real == "" {
		real = t.client(chain)
	}
	set(h, chain, proto, host, real)
}

func set(h http.Header, chain, proto, host, real string) {
	h[ForwardedFor] = []string{chain}
	h[ForwardedProto] = []string{proto}
	h[ForwardedHost] = []string{host}
	h[RealIP] = []string{real}
}

// client is the client's address in an X-Forwarded-For chain: the last
// one that is not a trusted proxy's, as nginx's real_ip_recursive takes
// it; the first if all are.
func (t Trust) client(chain string) string {
	c, _ := t.split(chain)
	return c
}

// verified is the part of an X-Forwarded-For chain that trusted hops
// wrote: from the client they saw on.
func (t Trust) verified(chain string) string {
	_, i := t.split(chain)
	return strings.TrimSpace(chain[i:])
}

// split finds the client in chain and where its entry starts.
func (t Trust) split(chain string) (string, int) {
	rest := chain
	for {
		i := strings.LastIndexByte(rest, ',')
		a := strings.TrimSpace(rest[i+1:])
		if i < 0 || a != "" && !t.Contains(a) {
			return a, i + 1
		}
		rest = rest[:i]
	}
}

// WriteUntrusted writes, as header lines of a head written by hand, the
// client's headers for a request from ip, a peer that is not trusted
// (whose own client headers the caller drops): what Forward sets.
func WriteUntrusted(w io.StringWriter, ip string, tls bool, host string) {
	w.WriteString(ForwardedFor + ": ")
	w.WriteString(ip)
	if tls {
		w.WriteString("\r\n" + ForwardedProto + ": https\r\n" + ForwardedHost + ": ")
	} else {
		w.WriteString("\r\n" + ForwardedProto + ": http\r\n" + ForwardedHost + ": ")
	}
	w.WriteString(host)
	w.WriteString("\r\n" + RealIP + ": ")
	w.WriteString(ip)
	w.WriteString("\r\n")
}

// StripHop removes from h the hop-by-hop headers and those its
// Connection header names.
func StripHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, k := range HopByHop {
		delete(h, k)
	}
}

// PeerIP is the address of a request's peer, its RemoteAddr without the
// port.
func PeerIP(remote string) string {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return ip
}
