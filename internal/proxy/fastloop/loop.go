// Package fastloop is the edge proxy's own HTTP/1.1 serving loop for the
// common request: a GET or HEAD without a body. The request head is
// recognised in the connection's read buffer and written to the
// upstream as it came, less its hop-by-hop headers, over a pool of
// upstream connections of the loop's own; the upstream's answer, when
// plain (a Content-Length, ordinary headers), is passed back as it came
// too. None of net/http's per-request goroutine, request and header
// allocations: the profile put those at about a third of the proxy's
// CPU per request.
//
// The loop only recognises; it never refuses. A head it does not fully
// understand (a body, an upgrade, HTTP/1.0, folded or odd headers, a
// percent-encoded path, headers about the client from a trusted proxy),
// or one its Router declines, is left unread in the buffer, and the
// connection is handed to a net/http server through Handoff, which
// parses the same bytes from the start and owns the connection from
// then on; a head longer than the buffer is read whole first. So the
// proxy is whole without the loop: it only makes the common case
// cheaper. Headers a client wrote about itself (package headers) the
// loop drops, and writes the proxy's own.
package fastloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// Router is what the loop asks of the proxy.
type Router interface {
	// Route returns where a plain request goes (host is the Host header
	// as sent, path has no query), or false to hand the connection over
	// with the request unread. A request routed is counted in flight
	// until Done.
	Route(host, path string, tls bool) (Target, bool)
	// Done reports the end of a request Route routed: its answer was
	// written whole, cut short, or replaced by an error page.
	Done(Target, *Finished)
}

// Target is an upstream a request goes to.
type Target struct {
	Addr string // host:port; the loop keeps a connection pool per address
	HSTS bool   // add Strict-Transport-Security unless the upstream sent it
	Ref  any    // the Router's own, given back in Done
	// Page, when set, is the body of the error pages the loop answers
	// for this target (502, 504) instead of Config.Page's.
	Page func(code int) string
}

// Finished is a request the loop served, for the access log and the
// metrics.
type Finished struct {
	Method, Host, Path, Remote string
	TLS                        bool
	Status                     int
	Bytes                      int64 // body bytes written to the client
	Start                      time.Time
}

// Config configures a Server.
type Config struct {
	Router Router
	// TLS makes it an HTTPS front: it serves the connections that
	// negotiate HTTP/1.1, and hands HTTP/2 ones over after the handshake.
	TLS *tls.Config
	// ReadHeaderTimeout bounds a request head: for the first request
	// of a connection from its accept, TLS handshake included; for the
	// next ones from their first byte. One deadline for all of the head,
	// also when it is longer than the loop's buffer and handed over.
	// IdleTimeout bounds the wait for the next request's first byte.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes is net/http's limit on a request head (default
	// http.DefaultMaxHeaderBytes): a long head is read up to it (and
	// net/http's slack of 4 KiB) before it is handed over.
	MaxHeaderBytes int
	// WriteTimeout bounds each write to a client that stops reading; it
	// is extended after every write that progresses, so long answers
	// and event streams go on.
	WriteTimeout time.Duration
	// UpstreamHeaderTimeout bounds the wait for an upstream's answer
	// head (504 past it); 0 for none.
	UpstreamHeaderTimeout time.Duration
	// MaxAnswerHead bounds an upstream's answer head (502 past it).
	MaxAnswerHead int
	// Page returns the body of the proxy's own error page for a status.
	Page func(code int) string
	// Trust is the proxies whose headers about the client are kept: a
	// request from one that has such headers is handed over, for
	// net/http's path to keep them. Anyone else's the loop drops, and
	// writes its own (package headers).
	Trust headers.Trust
}

// Server runs the loop on a listener.
type Server struct {
	cfg     Config
	ln      net.Listener
	handoff *chanListener
	pools   sync.Map // address -> *pool

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup

	// Requests answered by the loop, and connections handed over.
	served, handedOff atomic.Int64
}

// New returns a loop that will serve ln.
func New(ln net.Listener, cfg Config) *Server {
	return &Server{cfg: cfg, ln: ln, handoff: newChanListener(ln.Addr()), conns: map[*conn]struct{}{}}
}

// Handoff is the listener of the connections the loop hands over, for a
// net/http server to serve. A TLS connection comes with its handshake
// done; one with bytes read has a TLSConnectionState method.
func (s *Server) Handoff() net.Listener { return s.handoff }

// Served and HandedOff count the requests the loop answered and the
// connections it handed over.
func (s *Server) Served() int64    { return s.served.Load() }
func (s *Server) HandedOff() int64 { return s.handedOff.Load() }

// conn is one client connection the loop serves.
type conn struct {
	c    net.Conn
	raw  syscall.RawConn // the socket under c, to see if the client left
	idle atomic.Bool     // waiting for a request: Shutdown may close it

	remote, ip string
	trusted    bool      // ip is a trusted proxy's
	accepted   time.Time // the first request's head is due ReadHeaderTimeout after
}

// Serve accepts connections until Shutdown; it returns
// http.ErrServerClosed then.
func (s *Server) Serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
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
		cc := &conn{c: c, remote: c.RemoteAddr().String(), accepted: time.Now()}
		if sc, ok := c.(syscall.Conn); ok {
			cc.raw, _ = sc.SyscallConn()
		}
		cc.ip, _, err = net.SplitHostPort(cc.remote)
		if err != nil {
			cc.ip = cc.remote
		}
		cc.trusted = s.cfg.Trust.Contains(cc.ip)
		// Registered and counted under mu, which Shutdown takes after it
		// sets closing: so either Shutdown's Wait sees this connection,
		// or this sees closing and the connection is one that raced the
		// listener's close, which it would have reset anyway.
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(cc)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// Shutdown stops accepting, closes idle connections, and waits (up to
// ctx) for the ones answering a request to finish it.
func (s *Server) Shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.ln.Close()
	s.mu.Lock()
	for cc := range s.conns {
		if cc.idle.Load() {
			cc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for cc := range s.conns {
			cc.c.Close()
		}
		s.mu.Unlock()
	}
	s.handoff.Close()
	s.pools.Range(func(_, p any) bool { p.(*pool).closeIdle(); return true })
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func (s *Server) serveConn(cc *conn) {
	defer s.wg.Done()
	if s.cfg.TLS != nil && !s.handshake(cc) {
		return
	}
	c := cc.c
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(progressWriter{c, s.cfg.WriteTimeout})
	handedOff := false
	defer func() {
		s.forget(cc)
		bw.Reset(nil)
		writers.Put(bw)
		br.Reset(nil)
		readers.Put(br)
		if !handedOff {
			c.Close()
		}
	}()
	var req request
	for first := true; ; first = false {
		// Shutdown sets closing, then cuts the idle connections' reads:
		// in this order, either the read is cut or closing is seen. A
		// new connection is not idle: its client sent a request, or will,
		// and would not send it again on another one, as it would after a
		// kept-alive connection closed.
		cc.idle.Store(!first)
		if first {
			// The head is due a timeout after the accept, the TLS
			// handshake included: handshake sets the same deadline.
			c.SetReadDeadline(cc.accepted.Add(s.cfg.ReadHeaderTimeout))
		} else {
			c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		if !first && s.closing.Load() {
			return
		}
		if _, err := br.Peek(1); err != nil {
			return
		}
		cc.idle.Store(false)
		if !first {
			// A kept-alive connection's next head: due a timeout after
			// its first byte, as net/http has it.
			c.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
		}
		head, err := peekHead(br)
		if err != nil {
			return // the head was not sent in time, or the client left
		}
		if head == nil {
			// Longer than the buffer: read whole, under the same deadline,
			// so that net/http gets it at once rather than with a
			// timeout of its own.
			long, err := readLongHead(br, s.maxHead())
			if err != nil {
				return
			}
			handedOff = s.handOff(c, long)
			return
		}
		if !req.parse(head) || req.client && cc.trusted {
			handedOff = s.handOff(c, buffered(br))
			return
		}
		host, path := string(req.host), string(req.path)
		t, ok := s.cfg.Router.Route(host, path, s.cfg.TLS != nil)
		if !ok {
			handedOff = s.handOff(c, buffered(br))
			return
		}
		f := Finished{Method: req.method, Host: host, Path: path, Remote: cc.remote, TLS: s.cfg.TLS != nil, Start: time.Now()}
		keep := s.forward(cc, bw, head, &req, t, &f)
		s.cfg.Router.Done(t, &f)
		s.served.Add(1)
		br.Discard(len(head))
		if !keep || req.close {
			return
		}
	}
}

// handshake does the TLS handshake; a connection that negotiates HTTP/2
// is handed over whole. It reports whether the loop serves cc.
func (s *Server) handshake(cc *conn) bool {
	// A handshake is not idle: its request would be lost.
	tc := tls.Server(cc.c, s.cfg.TLS)
	// The first head's deadline (serveConn keeps it): one timeout for
	// the handshake and the head together.
	cc.c.SetDeadline(cc.accepted.Add(s.cfg.ReadHeaderTimeout))
	if err := tc.Handshake(); err != nil {
		cc.c.Close()
		s.forget(cc)
		return false
	}
	cc.c.SetWriteDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		// net/http's HTTP/2 server takes it whole, with its own timeouts.
		cc.c.SetReadDeadline(time.Time{})
		s.handedOff.Add(1)
		if !s.handoff.give(tc) {
			tc.Close()
		}
		s.forget(cc)
		return false
	}
	s.mu.Lock()
	cc.c = tc
	s.mu.Unlock()
	return true
}

func (s *Server) forget(cc *conn) {
	s.mu.Lock()
	delete(s.conns, cc)
	s.mu.Unlock()
}

// handOff passes c, with pending (bytes read from it but not used), to
// the net/http server.
func (s *Server) handOff(c net.Conn, pending []byte) bool {
	s.handedOff.Add(1)
	c.SetReadDeadline(time.Time{})
	bc := &bufferedConn{Conn: c, pending: pending}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		bc.tls = &st
	}
	return s.handoff.give(bc)
}

// buffered is a copy of what br holds unread: the loop's buffer goes
// back to its pool.
func buffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}

func (s *Server) maxHead() int {
	if s.cfg.MaxHeaderBytes > 0 {
		return s.cfg.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

// headEnd returns the length of the head at the start of b, through
// the empty line that ends it ("\r\n\r\n", or a bare "\n\n" that
// net/http takes too, and the loop's parsers refuse), looking from
// byte from on; -1 if b holds no end yet.
func headEnd(b []byte, from int) int {
	for i := max(from-2, 0); ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// peekHead returns the head (through its empty line) from br without
// consuming it, reading more as needed. It returns nil, nil for a head
// longer than the buffer, and an error if the connection fails or times
// out first.
func peekHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		b, _ := br.Peek(br.Buffered())
		if n := headEnd(b, from); n >= 0 {
			return b[:n], nil
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

// readLongHead reads from br a head longer than its buffer, through its
// empty line, or until it is longer than net/http takes (limit, and its
// slack of 4 KiB: net/http refuses it then, with 431). It returns all
// it read, the head and whatever came after it.
func readLongHead(br *bufio.Reader, limit int) ([]byte, error) {
	var got []byte
	for {
		b, _ := br.Peek(br.Buffered())
		from := len(got)
		got = append(got, b...)
		br.Discard(len(b))
		if headEnd(got, from) >= 0 || len(got) > limit+4<<10 {
			return got, nil
		}
		if _, err := br.Peek(1); err != nil {
			return nil, err
		}
	}
}

// progressWriter writes to a client with a deadline that each write
// pushes back: a client that stops reading is cut off, one that reads
// slowly is not.
type progressWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w progressWriter) Write(b []byte) (int, error) {
	if w.timeout > 0 {
		w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.c.Write(b)
}
