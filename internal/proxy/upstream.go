package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upstream is one release's listener, with what is in flight to it: the
// requests being proxied and the WebSockets open through it.
type upstream struct {
	app  string
	addr string
	pool *connPool
	rp   *httputil.ReverseProxy

	inflight atomic.Int64
	// draining is set once a newer upstream took u's place in the table;
	// a request that counted itself in u after that looks again.
	draining atomic.Bool
	healthy  atomic.Bool
	health   atomic.Pointer[healthState]
	stop     context.CancelFunc // ends the health checks

	mu       sync.Mutex
	ws       map[*wsConn]struct{}
	closedWS bool          // drain timeout passed: new WebSockets are closed at once
	done     chan struct{} // closed when a drain has finished
	timedOut int64         // requests still in flight when the drain ended
}

func (u *upstream) openWebSockets() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.ws)
}

// connPool is a RoundTripper for one upstream: keep-alive connections
// on loopback, used by the goroutine serving the request itself, with
// none of http.Transport's per-request goroutine hand-offs. Requests
// with a body, and anything it does not handle, go to the shared
// http.Transport instead.
type connPool struct {
	addr          string
	dialer        *net.Dialer
	fallback      *http.Transport
	headerTimeout time.Duration
	maxIdle       int

	mu       sync.Mutex
	idle     []*pconn
	busy     map[*pconn]struct{}
	closed   bool
	watching bool
}

type pconn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	reused   bool

	// Read by the pool's watchdog, under the pool's lock.
	ctx       context.Context // of the request using it
	waitSince atomic.Int64    // unix nanos when the wait for a response head began; 0 if not waiting
	aborted   atomic.Bool     // the watchdog cut it: never reuse
}

// idleTimeout is how long an idle upstream connection is kept: less than
// the app servers' own keep-alive timeouts, so that a connection the
// upstream has closed is seldom picked.
const idleTimeout = 30 * time.Second

var aLongTimeAgo = time.Unix(1, 0)

func newConnPool(addr string, fallback *http.Transport, headerTimeout time.Duration) *connPool {
	return &connPool{
		addr: addr, fallback: fallback, headerTimeout: headerTimeout, maxIdle: 512,
		dialer: &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second},
	}
}

// get returns an idle connection, or a new one, marked busy for ctx.
func (p *connPool) get(ctx context.Context) (*pconn, error) {
	now := time.Now()
	p.mu.Lock()
	if !p.watching && !p.closed {
		p.watching = true
		p.busy = map[*pconn]struct{}{}
		go p.watchdog()
	}
	for n := len(p.idle); n > 0; n = len(p.idle) {
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(pc.lastUsed) < idleTimeout && quiet(pc.c) {
			pc.reused = true
			pc.ctx = ctx
			p.busy[pc] = struct{}{}
			p.mu.Unlock()
			return pc, nil
		}
		pc.c.Close()
	}
	p.mu.Unlock()
	c, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 4<<10), ctx: ctx}
	p.mu.Lock()
	p.busy[pc] = struct{}{}
	p.mu.Unlock()
	return pc, nil
}

// put gives a connection whose exchange ended cleanly back to the pool.
// One holding bytes beyond the answer (a body to HEAD, more than the
// Content-Length) is closed: they would be read as the next answer.
func (p *connPool) put(pc *pconn) {
	pc.lastUsed = time.Now()
	p.mu.Lock()
	delete(p.busy, pc)
	pc.ctx = nil
	if p.closed || len(p.idle) >= p.maxIdle || pc.aborted.Load() || pc.br.Buffered() > 0 {
		p.mu.Unlock()
		pc.c.Close()
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// discard closes a connection that is not to be reused.
func (p *connPool) discard(pc *pconn) {
	p.mu.Lock()
	delete(p.busy, pc)
	pc.ctx = nil
	p.mu.Unlock()
	pc.c.Close()
}

// quiet reports whether an idle connection has nothing to read: no
// bytes the upstream sent after its last answer, and no end of stream.
// It peeks without blocking, one syscall.
func quiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		_, _, errno := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = errno == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && ok
}

// watchdog cuts the exchanges whose client went away and those whose
// upstream takes longer than headerTimeout to answer. One goroutine per
// upstream checking a few times a second costs less than a timer and a
// context callback on every request.
func (p *connPool) watchdog() {
	every := 250 * time.Millisecond
	if p.headerTimeout > 0 && p.headerTimeout/4 < every {
		every = max(p.headerTimeout/4, 10*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		now := time.Now().UnixNano()
		p.mu.Lock()
		if p.closed && len(p.busy) == 0 {
			p.mu.Unlock()
			return
		}
		for pc := range p.busy {
			since := pc.waitSince.Load()
			late := p.headerTimeout > 0 && since != 0 && time.Duration(now-since) > p.headerTimeout
			if late || (pc.ctx != nil && pc.ctx.Err() != nil) {
				pc.aborted.Store(true)
				pc.c.SetDeadline(aLongTimeAgo)
			}
		}
		p.mu.Unlock()
	}
}

// closeIdle closes the idle connections; with final, later ones too.
func (p *connPool) closeIdle(final bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if final {
		p.closed = true
	}
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// RoundTrip sends a request without a body over a pooled connection, on
// the calling goroutine (httputil.ReverseProxy calls it for requests the
// fast path in forward.go leaves to it). Requests with a body go to the
// shared http.Transport.
func (p *connPool) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		return p.fallback.RoundTrip(req)
	}
	return p.exchange(req.Context(), req, req.Method, func(bw *bufio.Writer) error { return req.Write(bw) })
}

// exchange writes a request with write and reads the response head. A
// request whose reused connection turns out to have been closed by the
// upstream before it answered anything is retried once on a new
// connection if it is idempotent. The response body gives the
// connection back to the pool once read to its end.
func (p *connPool) exchange(ctx context.Context, req *http.Request, method string, write func(*bufio.Writer) error) (*http.Response, error) {
	_, resp, err := p.exchangeRaw(ctx, req, method, write, false)
	return resp, err
}

// exchangeRaw is exchange that, with raw, returns an answer whose head
// is plain (see plainHead) unparsed, for the fast loop to pass on as it
// came; other answers come parsed, as from exchange.
func (p *connPool) exchangeRaw(ctx context.Context, req *http.Request, method string, write func(*bufio.Writer) error, raw bool) (*plainAnswer, *http.Response, error) {
	for attempt := 0; ; attempt++ {
		pc, err := p.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		answered, err := p.send(pc, write)
		if err == nil && raw {
			if a, ok := plainHead(pc.br, method == http.MethodHead); ok {
				a.pc, a.pool = pc, p
				return a, nil, nil
			}
		}
		var resp *http.Response
		if err == nil {
			resp, err = p.readResponse(pc, req)
		}
		if err == nil {
			return nil, resp, nil
		}
		p.discard(pc)
		if pc.aborted.Load() && ctx.Err() == nil {
			return nil, nil, &timeoutError{fmt.Sprintf("upstream %s did not answer within %s", p.addr, p.headerTimeout)}
		}
		if attempt == 0 && pc.reused && !answered && idempotent(method) && ctx.Err() == nil {
			continue
		}
		return nil, nil, err
	}
}

// timeoutError is a net.Error that says it is a timeout (504).
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// send writes the request and waits for the first byte of the answer;
// answered reports whether one came.
func (p *connPool) send(pc *pconn, write func(*bufio.Writer) error) (answered bool, err error) {
	if err := write(pc.bw); err != nil {
		return false, err
	}
	if err := pc.bw.Flush(); err != nil {
		return false, err
	}
	pc.waitSince.Store(time.Now().UnixNano())
	_, err = pc.br.Peek(1)
	if err != nil {
		pc.waitSince.Store(0)
		return false, fmt.Errorf("upstream %s closed the connection: %w", p.addr, err)
	}
	return true, nil
}

// readResponse reads the response head after send.
func (p *connPool) readResponse(pc *pconn, req *http.Request) (resp *http.Response, err error) {
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			pc.waitSince.Store(0)
			return nil, err
		}
		// 1xx informational answers (not 101) are skipped.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	pc.waitSince.Store(0)
	reuse := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody || req.Method == http.MethodHead {
		if reuse {
			p.put(pc)
		} else {
			p.discard(pc)
		}
		return resp, nil
	}
	resp.Body = &pooledBody{rc: resp.Body, pc: pc, pool: p, reuse: reuse}
	return resp, nil
}

// pooledBody gives its connection back to the pool once the body has
// been read to its end, or closes it.
type pooledBody struct {
	rc    io.ReadCloser
	pc    *pconn
	pool  *connPool
	reuse bool
	done  bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

func (b *pooledBody) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *pooledBody) release(atEOF bool) {
	b.done = true
	if atEOF && b.reuse {
		b.pool.put(b.pc)
		return
	}
	b.pool.discard(b.pc)
}

// newTransport is the transport for requests with a body (and the
// health checks): loopback connections kept alive and reused.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       idleTimeout,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
