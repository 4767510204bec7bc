package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The plain-HTTP listener is served by a loop of the proxy's own for the
// common case, a GET or HEAD without a body for a healthy route: the
// request head is checked in the connection's read buffer and written to
// the upstream as it came, less its hop-by-hop headers, and the answer
// written back, with none of net/http's per-request goroutine, request
// and header allocations. The profile put those at about a third of the
// proxy's CPU per request.
//
// The loop only recognises; it never refuses. A head it does not fully
// understand (a body, an upgrade, HTTP/1.0, folded or odd headers, a
// percent-encoded path, a head longer than its buffer), or a request it
// does not answer itself (unknown host, unhealthy upstream, HTTPS
// redirect, ACME challenge) is left unread in the buffer, and the
// connection is handed to the net/http server, which parses the same
// bytes from the start and owns the connection from then on.

// h1Server runs the fast loop on a listener and hands what it does not
// serve to an http.Server through handoff.
type h1Server struct {
	s       *Server
	t       Timeouts
	ln      net.Listener
	handoff *chanListener
	// tlsConf makes it the HTTPS front: the loop serves connections that
	// negotiate HTTP/1.1, and hands HTTP/2 ones over after the handshake.
	tlsConf *tls.Config

	mu      sync.Mutex
	conns   map[*h1Conn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup

	// Requests answered by the loop, and connections handed over.
	served, handedOff atomic.Int64
}

type h1Conn struct {
	c    net.Conn
	idle atomic.Bool // waiting for a request: Shutdown may close it
}

func newH1Server(s *Server, ln net.Listener, t Timeouts) *h1Server {
	return &h1Server{s: s, t: t.withDefaults(), ln: ln, handoff: newChanListener(ln.Addr()), conns: map[*h1Conn]struct{}{}}
}

// serve accepts connections until the listener is closed.
func (h *h1Server) serve() error {
	var delay time.Duration
	for {
		c, err := h.ln.Accept()
		if err != nil {
			if h.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: wait, as net/http does, rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		hc := &h1Conn{c: c}
		h.mu.Lock()
		h.conns[hc] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go h.serveConn(hc)
	}
}

// shutdown stops accepting, closes idle connections, and waits (up to
// ctx) for the ones answering a request to finish it.
func (h *h1Server) shutdown(ctx context.Context) {
	h.closing.Store(true)
	h.ln.Close()
	h.mu.Lock()
	for hc := range h.conns {
		if hc.idle.Load() {
			hc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.mu.Lock()
		for hc := range h.conns {
			hc.c.Close()
		}
		h.mu.Unlock()
	}
	h.handoff.Close()
}

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func (h *h1Server) serveConn(hc *h1Conn) {
	defer h.wg.Done()
	if h.tlsConf != nil {
		// A handshake is not idle: its request would be lost.
		tc := tls.Server(hc.c, h.tlsConf)
		hc.c.SetDeadline(time.Now().Add(h.t.ReadHeader))
		if err := tc.Handshake(); err != nil {
			hc.c.Close()
			h.forget(hc)
			return
		}
		hc.c.SetDeadline(time.Time{})
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			// net/http's HTTP/2 server takes it whole.
			h.handedOff.Add(1)
			if !h.handoff.give(tc) {
				tc.Close()
			}
			h.forget(hc)
			return
		}
		h.mu.Lock()
		hc.c = tc
		h.mu.Unlock()
	}
	c := hc.c
	br := h1Readers.Get().(*bufio.Reader)
	br.Reset(c)
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(c)
	handedOff := false
	defer func() {
		h.forget(hc)
		bw.Reset(nil)
		h1Writers.Put(bw)
		br.Reset(nil)
		h1Readers.Put(br)
		if !handedOff {
			c.Close()
		}
	}()
	wait := h.t.ReadHeader // for the first request
	var req h1Request
	for first := true; ; first = false {
		// Shutdown sets closing, then cuts the idle connections' reads:
		// in this order, either the read is cut or closing is seen. A
		// new connection is not idle: its client sent a request, or will,
		// and would not send it again on another one, as it would after a
		// kept-alive connection closed.
		hc.idle.Store(!first)
		c.SetReadDeadline(time.Now().Add(wait))
		if !first && h.closing.Load() {
			return
		}
		if _, err := br.Peek(1); err != nil {
			return
		}
		hc.idle.Store(false)
		wait = h.t.Idle
		c.SetReadDeadline(time.Now().Add(h.t.ReadHeader))
		head, err := peekHead(br)
		if err != nil {
			return // the head was not sent in time, or the client left
		}
		if head == nil {
			handedOff = h.handOff(c, br)
			return
		}
		var e *entry
		if req.parse(head) {
			e = h.fastEntry(&req)
		}
		if e == nil {
			handedOff = h.handOff(c, br)
			return
		}
		keep := h.forward(c, bw, head, &req, e)
		h.served.Add(1)
		br.Discard(len(head))
		if !keep || req.close {
			return
		}
	}
}

func (h *h1Server) forget(hc *h1Conn) {
	h.mu.Lock()
	delete(h.conns, hc)
	h.mu.Unlock()
}

// handOff passes c, with what br holds unread, to the net/http server.
func (h *h1Server) handOff(c net.Conn, br *bufio.Reader) bool {
	h.handedOff.Add(1)
	c.SetReadDeadline(time.Time{})
	b, _ := br.Peek(br.Buffered())
	bc := &bufferedConn{Conn: c, pending: bytes.Clone(b)}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		bc.tls = &st
	}
	return h.handoff.give(bc)
}

// peekHead returns the request head (through its blank line) from br
// without consuming it, reading more as needed. It returns nil, nil for
// a head longer than the buffer, and an error if the connection fails
// or times out first.
func peekHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		b, _ := br.Peek(br.Buffered())
		start := max(from-3, 0)
		if i := bytes.Index(b[start:], []byte("\r\n\r\n")); i >= 0 {
			return b[:start+i+4], nil
		}
		from = len(b)
		if len(b) == br.Size() {
			return nil, nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// h1Request is what the fast loop needs of a request head. Its slices
// point into the head.
type h1Request struct {
	method, target, path, host []byte
	head                       bool // HEAD
	close                      bool // Connection: close
	forwarded                  bool // the client sent X-Forwarded-* or Forwarded
	lines                      [][2]int
}

// parse recognises a GET or HEAD request head without a body, with
// plain header lines and one valid Host; anything else is false.
func (r *h1Request) parse(head []byte) bool {
	*r = h1Request{lines: r.lines[:0]} // the lines' array is reused
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return false
	}
	line := head[:eol-1]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.method = line[:3]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.method, r.head = line[:4], true
	default:
		return false
	}
	rest := line[len(r.method)+1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 1 || !bytes.Equal(rest[sp+1:], []byte("HTTP/1.1")) {
		return false
	}
	r.target = rest[:sp]
	if r.target[0] != '/' {
		return false
	}
	r.path = r.target
	for i, c := range r.target {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return false
		}
		if c == '?' && len(r.path) == len(r.target) {
			r.path = r.target[:i]
		}
	}
	hosts := 0
	for pos := eol + 1; ; {
		end := bytes.IndexByte(head[pos:], '\n')
		if end < 1 || head[pos+end-1] != '\r' {
			return false
		}
		l := head[pos : pos+end-1]
		if len(l) == 0 {
			break
		}
		colon := bytes.IndexByte(l, ':')
		if colon < 1 {
			return false
		}
		name := l[:colon]
		for _, c := range name {
			if !isTokenChar(c) {
				return false
			}
		}
		value := bytes.Trim(l[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
		skip := false
		switch {
		case equalFold(name, "host"):
			hosts++
			r.host = value
		case equalFold(name, "content-length"):
			if !bytes.Equal(value, []byte("0")) {
				return false
			}
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				r.close = true
			case equalFold(value, "keep-alive"):
			default:
				return false
			}
			skip = true
		case equalFold(name, "transfer-encoding"), equalFold(name, "upgrade"), equalFold(name, "expect"),
			equalFold(name, "te"), equalFold(name, "trailer"):
			return false
		case equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"), equalFold(name, "proxy-authenticate"),
			equalFold(name, "proxy-authorization"):
			skip = true
		case equalFold(name, "x-forwarded-for"), equalFold(name, "x-forwarded-proto"), equalFold(name, "x-forwarded-host"),
			equalFold(name, "forwarded"):
			r.forwarded, skip = true, true
		}
		if !skip {
			r.lines = append(r.lines, [2]int{pos, pos + end + 1})
		}
		pos += end + 1
	}
	return hosts == 1 && validHostHeader(r.host)
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// equalFold compares ASCII b with lower-case s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// validHostHeader accepts host names, IPv4 and bracketed IPv6
// addresses, with an optional port.
func validHostHeader(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' ||
			c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// fastEntry returns the route the fast loop serves req with, or nil to
// leave req to net/http.
func (h *h1Server) fastEntry(req *h1Request) *entry {
	s := h.s
	if req.forwarded && len(s.opts.TrustedProxies) > 0 {
		return nil // X-Forwarded-* may have to be kept: the full path decides
	}
	if bytes.HasPrefix(req.path, []byte("/.well-known/acme-challenge/")) {
		return nil
	}
	host := hostOf(string(req.host))
	e := s.table.Load().lookup(host, string(req.path))
	if e == nil || !e.up.healthy.Load() {
		return nil
	}
	if h.tlsConf == nil && e.route.TLS && s.opts.Certs != nil && s.opts.Certs.Has(host) {
		return nil // redirected to HTTPS
	}
	return e
}

// forward answers req from e's upstream; it reports whether the
// connection can serve another request.
func (h *h1Server) forward(c net.Conn, bw *bufio.Writer, head []byte, req *h1Request, e *entry) bool {
	s := h.s
	start := time.Now()
	u := e.up
	for {
		u.inflight.Add(1)
		if !u.draining.Load() {
			break
		}
		u.inflight.Add(-1)
		if e = s.table.Load().byApp(e.route.App); e == nil {
			// The route went away between the lookup and now.
			return h.answerPage(c, bw, req, start, s.metrics.none, http.StatusNotFound, "No application is served at this address.")
		}
		u = e.up
	}
	defer u.inflight.Add(-1)
	ip, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		ip = c.RemoteAddr().String()
	}
	method, up := "GET", fastGET
	if req.head {
		method, up = "HEAD", fastHEAD
	}
	plain, resp, err := u.pool.exchangeRaw(context.Background(), up, method, func(w *bufio.Writer) error {
		w.Write(head[:bytes.IndexByte(head, '\n')+1])
		for _, l := range req.lines {
			w.Write(head[l[0]:l[1]])
		}
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(ip)
		if h.tlsConf != nil {
			w.WriteString("\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ")
		} else {
			w.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ")
		}
		w.Write(req.host)
		_, err := w.WriteString("\r\n\r\n")
		return err
	}, true)
	if err != nil {
		code, msg := http.StatusBadGateway, "The application is not answering. Try again in a moment."
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			code, msg = http.StatusGatewayTimeout, "The application took too long to answer."
		}
		return h.answerPage(c, bw, req, start, e.m, code, msg)
	}
	hsts := e.route.HSTS && h.tlsConf != nil
	if plain != nil {
		n, keep := plain.writeTo(bw, hsts, req.close)
		h.done(e.m, req, plain.status, n, start, c)
		return keep
	}
	defer resp.Body.Close()
	n, keep := h.writeResponse(bw, req, resp, hsts)
	h.done(e.m, req, resp.StatusCode, n, start, c)
	return keep
}

// The requests the fast loop's exchanges are read as: only their method
// (and Close) are looked at.
var (
	fastGET  = &http.Request{Method: http.MethodGet}
	fastHEAD = &http.Request{Method: http.MethodHead}
)

// writeResponse writes resp to the client, with HSTS if asked and the
// upstream set none; it returns the body bytes
// written and whether the connection is still good.
func (h *h1Server) writeResponse(bw *bufio.Writer, req *h1Request, resp *http.Response, hsts bool) (int64, bool) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(resp.Status)
	bw.WriteString("\r\n")
	if _, set := resp.Header["Strict-Transport-Security"]; hsts && !set {
		bw.WriteString("Strict-Transport-Security: max-age=31536000\r\n")
	}
	if _, set := resp.Header["Date"]; !set {
		// A proxy adds the Date an upstream left out (RFC 9110 6.6.1).
		writeDate(bw)
	}
	noBody := req.head || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	chunked := !noBody && resp.ContentLength < 0
	writeHeaders(bw, resp.Header, func(k string) bool {
		return skipResponseHeader(k) || k == "Content-Length" && !noBody || namedInConnection(resp.Header, k)
	})
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case !noBody:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if req.close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if noBody || resp.ContentLength == 0 {
		return 0, bw.Flush() == nil
	}
	buf := h.s.buffers.Get()
	defer h.s.buffers.Put(buf)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(k), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:k])
				bw.WriteString("\r\n")
				// A streamed answer (server-sent events): each piece goes
				// out as it comes.
				if bw.Flush() != nil {
					return n, false
				}
			} else if _, err := bw.Write(buf[:k]); err != nil {
				return n, false
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// Cut short: the client must not take it as whole.
			bw.Flush()
			return n, false
		}
	}
	if chunked {
		bw.WriteString("0\r\n")
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				bw.WriteString(k + ": " + v + "\r\n")
			}
		}
		bw.WriteString("\r\n")
	}
	return n, bw.Flush() == nil && (chunked || n == resp.ContentLength)
}

func writeDate(bw *bufio.Writer) {
	bw.WriteString("Date: ")
	bw.Write(time.Now().UTC().AppendFormat(make([]byte, 0, 32), http.TimeFormat))
	bw.WriteString("\r\n")
}

func namedInConnection(h http.Header, k string) bool {
	if len(h["Connection"]) == 0 {
		return false
	}
	return headerHasToken(h, "Connection", k)
}

// answerPage writes one of the proxy's own pages.
func (h *h1Server) answerPage(c net.Conn, bw *bufio.Writer, req *h1Request, start time.Time, m *appMetrics, code int, msg string) bool {
	body := pageBody(code, msg)
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	writeDate(bw)
	bw.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")
	bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	if !req.head {
		bw.WriteString(body)
	}
	ok := bw.Flush() == nil
	h.done(m, req, code, int64(len(body)), start, c)
	return ok
}

// done counts a request in the metrics and the access log.
func (h *h1Server) done(m *appMetrics, req *h1Request, status int, size int64, start time.Time, c net.Conn) {
	d := time.Since(start)
	m.observe(status, d)
	if l := h.s.opts.AccessLog; l != nil {
		l.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("app", m.app), slog.String("host", string(req.host)), slog.String("method", string(req.method)),
			slog.String("path", string(req.path)), slog.Int("status", status), slog.Int64("bytes", size),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("remote", c.RemoteAddr().String()),
			slog.String("proto", "HTTP/1.1"))
	}
}

// bufferedConn is a connection handed to net/http with the bytes the
// fast loop had read but not used. They are copied out of the loop's
// buffer, which goes back to its pool at once: a long-lived connection
// (a WebSocket) keeps no buffer of the loop's.
type bufferedConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
	// tls is the state of a TLS connection (Conn is then a *tls.Conn,
	// which net/http does not see through the wrapper): connContext
	// passes it to the handler.
	tls *tls.ConnectionState
}

type tlsStateKey struct{}

// connContext is the http.Server's ConnContext: it keeps a handed-over
// TLS connection's state for ServeHTTP, which sets it as Request.TLS.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if bc, ok := c.(*bufferedConn); ok && bc.tls != nil {
		return context.WithValue(ctx, tlsStateKey{}, bc.tls)
	}
	return ctx
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	b.mu.Lock()
	if len(b.pending) == 0 {
		b.mu.Unlock()
		return b.Conn.Read(p)
	}
	defer b.mu.Unlock()
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	return n, nil
}

// SyscallConn gives the WebSocket relay the socket itself, so that an
// idle connection waits without a buffer (websocket.go); only once the
// pending bytes are read.
func (b *bufferedConn) SyscallConn() (syscall.RawConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sc, ok := b.Conn.(syscall.Conn)
	if !ok || len(b.pending) > 0 {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// chanListener is a net.Listener whose connections come from give.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// give hands c to the server's Accept; false if the listener is closed
// (the caller still owns c).
func (l *chanListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
