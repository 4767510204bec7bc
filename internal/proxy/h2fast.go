package proxy

import (
	"bufio"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/hoistdev/hoist/internal/proxy/fastloop"
	"github.com/hoistdev/hoist/internal/proxy/headers"
	"golang.org/x/net/http/httpguts"
)

// The HTTP/2 fast path: net/http's HTTP/2 server still reads and
// writes the client's frames (its defences against hostile clients are
// the point), but a plain request (GET or HEAD, no body) goes to the
// upstream over the fast loop's pools (fastloop.Upstreams), on the
// handler's goroutine, its head written by hand, and the answer is
// copied to the ResponseWriter: none of ReverseProxy's request and
// header clones, nor http.Transport's two goroutine hand-offs a
// request, which the profile put at most of HTTP/2's cost. It is on
// with the fast loop, and off without it. Anything else (a body,
// Expect, a trusted peer's headers, an odd host or header) goes to
// ReverseProxy as before.

// h2Plain reports whether r is an HTTP/2 request the fast path takes.
func (s *Server) h2Plain(r *http.Request) bool {
	// ContentLength 0 with the stream still open (DATA frames that
	// should not come) is taken too: ReverseProxy sends no body then
	// either.
	if r.ProtoMajor != 2 || r.Method != http.MethodGet && r.Method != http.MethodHead ||
		r.ContentLength != 0 || len(r.Trailer) > 0 || !plainHost(r.Host) {
		return false
	}
	if _, ok := r.Header["Expect"]; ok || s.trust.Contains(headers.PeerIP(r.RemoteAddr)) {
		return false
	}
	uri := r.URL.RequestURI()
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	for k, vs := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// plainHost reports whether host is a name or address with an optional
// port in ASCII, which http.Transport would send as it is (it converts
// international names to punycode, and refuses odd ones).
func plainHost(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// requestExcluded are the request headers not copied as they are:
// http.Transport writes Host and the framing itself, and no proxy
// passes on hop-by-hop headers (headers.IsHopByHop) or a client's word
// about itself (headers.ClientHeader, for a peer that is not trusted).
var requestExcluded = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true}

// writeH2Head writes r's head to the upstream as ReverseProxy, with the
// proxy's Rewrite and http.Transport, would for a peer that is not
// trusted.
func writeH2Head(w *bufio.Writer, r *http.Request) {
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(r.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	for k, vs := range r.Header {
		if requestExcluded[k] || headers.IsHopByHop(k) {
			continue
		}
		if match, _ := headers.ClientHeader(k); match {
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // http.Transport sends no empty User-Agent
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
	// ReverseProxy keeps TE: trailers, the one TE an HTTP/2 client may
	// send: the app may then send trailers.
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		w.WriteString("Te: trailers\r\n")
	}
	headers.WriteUntrusted(w, headers.PeerIP(r.RemoteAddr), r.TLS != nil, r.Host)
	w.WriteString("\r\n")
}

// forwardH2 passes a plain HTTP/2 request (h2Plain) on to e's upstream
// over ups, answering as ReverseProxy does: the same error pages, the
// answer's hop-by-hop headers dropped, 1xx passed on, trailers
// announced and sent, streamed answers flushed as they come, and an
// answer cut short ends the stream with a reset (http.ErrAbortHandler).
func (s *Server) forwardH2(w http.ResponseWriter, r *http.Request, e *entry, ups *fastloop.Upstreams) {
	ans, err := ups.Exchange(r.Context(), e.up.addr, r.Method == http.MethodHead,
		func(bw *bufio.Writer) { writeH2Head(bw, r) },
		func(info *http.Response) {
			// As ReverseProxy's Got1xxResponse: the 1xx's headers only.
			h := w.Header()
			headers.StripHop(info.Header)
			for k, vs := range info.Header {
				h[k] = append(h[k], vs...)
			}
			w.WriteHeader(info.StatusCode)
			clear(h)
		})
	if err != nil {
		s.upstreamError(w, r, err)
		return
	}
	resp := ans.Response
	headers.StripHop(resp.Header)
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append(h[k], vs...)
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	if err := s.copyAnswer(w, resp); err != nil {
		ans.Done(false)
		panic(http.ErrAbortHandler)
	}
	ans.Done(true)
	if len(resp.Trailer) > 0 {
		// Forces the answer chunked, its trailers after the body.
		http.NewResponseController(w).Flush()
	}
	if len(resp.Trailer) == announced {
		for k, vs := range resp.Trailer {
			h[k] = append(h[k], vs...)
		}
		return
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = append(h[http.TrailerPrefix+k], vs...)
	}
}

// copyAnswer copies resp's body to w to its end, flushing each piece
// of a streamed answer (no length, or server-sent events) as
// ReverseProxy does; nil once the body was read whole and written.
func (s *Server) copyAnswer(w http.ResponseWriter, resp *http.Response) error {
	if resp.Body == http.NoBody {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	flush := resp.ContentLength == -1 || ct == "text/event-stream"
	rc := http.NewResponseController(w)
	buf := s.buffers.Get()
	defer s.buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}
