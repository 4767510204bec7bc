package fastloop

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pool is the loop's keep-alive connections to one upstream, used by
// the goroutine serving the request itself, with none of
// http.Transport's per-request goroutine hand-offs.
type pool struct {
	addr          string
	dialer        *net.Dialer
	headerTimeout time.Duration
	headSize      int // the read buffer: the longest answer head
	maxIdle       int

	mu       sync.Mutex
	idle     []*pconn
	busy     map[*pconn]struct{}
	closed   bool
	watching bool
	// dozing is set while the watchdog, with nothing in flight, sleeps
	// until the oldest idle connection expires; wake brings it back.
	dozing bool
	wake   chan struct{}
}

type pconn struct {
	c        net.Conn
	raw      syscall.RawConn // c's socket, to peek at it; nil if none
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	reused   bool

	// Read by the pool's watchdog, under the pool's lock.
	client     syscall.RawConn // of the client the exchange is for; nil if unknown
	waitSince  atomic.Int64    // unix nanos when the wait for an answer head began; 0 if not waiting
	aborted    atomic.Bool     // the watchdog cut it: never reuse
	clientGone atomic.Bool     // ... because the client left
}

// idleTimeout is how long an idle upstream connection is kept: less than
// the app servers' own keep-alive timeouts, so that a connection the
// upstream has closed is seldom picked.
const idleTimeout = 30 * time.Second

// watchEvery is how often the watchdog looks at the exchanges: the
// longest a request whose client left keeps its upstream busy.
const watchEvery = 250 * time.Millisecond

func newPool(addr string, headerTimeout time.Duration, headSize int) *pool {
	return &pool{
		addr: addr, headerTimeout: headerTimeout, headSize: headSize, maxIdle: 512,
		dialer: &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second},
		wake:   make(chan struct{}, 1),
	}
}

// pool returns the pool for addr.
func (s *Server) pool(addr string) *pool {
	if p, ok := s.pools.Load(addr); ok {
		return p.(*pool)
	}
	p, _ := s.pools.LoadOrStore(addr, newPool(addr, s.cfg.UpstreamHeaderTimeout, s.cfg.MaxAnswerHead))
	return p.(*pool)
}

// get returns an idle connection that has nothing to read, or a new
// one, marked busy for client.
func (p *pool) get(client syscall.RawConn) (*pconn, error) {
	now := time.Now()
	p.mu.Lock()
	if !p.watching {
		p.watching = true
		if p.busy == nil {
			p.busy = map[*pconn]struct{}{}
		}
		go p.watchdog()
	} else if p.dozing {
		p.dozing = false
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	for n := len(p.idle); n > 0; n = len(p.idle) {
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(pc.lastUsed) < idleTimeout && quiet(pc.raw) {
			pc.reused = true
			pc.client = client
			p.busy[pc] = struct{}{}
			p.mu.Unlock()
			return pc, nil
		}
		pc.c.Close()
	}
	p.mu.Unlock()
	c, err := p.dialer.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, p.headSize), bw: bufio.NewWriterSize(c, 4<<10), client: client}
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	p.mu.Lock()
	p.busy[pc] = struct{}{}
	p.mu.Unlock()
	return pc, nil
}

// done ends pc's exchange: back to the pool if reuse and it holds no
// bytes beyond the answer (a body to HEAD, more than the
// Content-Length: they would be read as the next answer), else closed.
func (p *pool) done(pc *pconn, reuse bool) {
	pc.lastUsed = time.Now()
	pc.waitSince.Store(0)
	p.mu.Lock()
	delete(p.busy, pc)
	pc.client = nil
	if !reuse || p.closed || len(p.idle) >= p.maxIdle || pc.aborted.Load() || pc.br.Buffered() > 0 {
		p.mu.Unlock()
		pc.c.Close()
		return
	}
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// quiet reports whether an idle connection has nothing to read: no
// bytes the upstream sent after its last answer, and no end of stream.
// It peeks without blocking, one syscall.
func quiet(rc syscall.RawConn) bool {
	if rc == nil {
		return false
	}
	var b [1]byte
	ok := false
	err := rc.Read(func(fd uintptr) bool {
		_, _, errno := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = errno == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && ok
}

// left reports whether the client on raw has closed its side or reset
// the connection, even with bytes it sent still unread (POLLRDHUP).
func left(raw syscall.RawConn) bool {
	gone := false
	err := raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: pollRDHUP}}
		n, err := unix.Poll(fds, 0)
		gone = err == nil && n > 0 && fds[0].Revents&(pollRDHUP|unix.POLLHUP|unix.POLLERR) != 0
	})
	return err != nil || gone
}

// watchdog cuts the exchanges whose client left, and those whose
// upstream takes longer than headerTimeout to answer, and closes idle
// connections past idleTimeout. One goroutine per upstream that looks a
// few times a second costs less than a timer and a check on every
// request. With nothing in flight it only waits for the oldest idle
// connection to expire (or for a request): a timer that fires while the
// proxy is otherwise idle wakes the runtime and costs the next request's
// latency (a WebSocket's round trip). It ends once the pool is empty.
func (p *pool) watchdog() {
	every := watchEvery
	if p.headerTimeout > 0 && p.headerTimeout/4 < every {
		every = max(p.headerTimeout/4, 10*time.Millisecond)
	}
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		// Wait first: the exchange that started the watchdog is not
		// marked busy yet.
		select {
		case <-t.C:
		case <-p.wake:
		}
		now := time.Now()
		p.mu.Lock()
		p.idle = closeExpired(p.idle, now)
		if len(p.busy) == 0 && len(p.idle) == 0 {
			p.watching, p.dozing = false, false
			p.mu.Unlock()
			return
		}
		for pc := range p.busy {
			since := pc.waitSince.Load()
			late := p.headerTimeout > 0 && since != 0 && now.Sub(time.Unix(0, since)) > p.headerTimeout
			gone := pc.client != nil && left(pc.client)
			if late || gone {
				pc.clientGone.Store(gone)
				pc.aborted.Store(true)
				pc.c.SetDeadline(aLongTimeAgo)
			}
		}
		wait := every
		if len(p.busy) == 0 {
			wait = p.idle[0].lastUsed.Add(idleTimeout).Sub(now)
			p.dozing = true
		}
		p.mu.Unlock()
		t.Reset(wait)
	}
}

// closeExpired closes the connections idle for idleTimeout (the oldest
// are first) and returns the others.
func closeExpired(idle []*pconn, now time.Time) []*pconn {
	n := 0
	for n < len(idle) && now.Sub(idle[n].lastUsed) >= idleTimeout {
		idle[n].c.Close()
		n++
	}
	if n == 0 {
		return idle
	}
	return append(idle[:0], idle[n:]...)
}

// closeIdle closes the idle connections, and those given back later.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// exchange writes a request with write over a pooled connection and
// reads the answer's head: a plain one (see parsePlain) unparsed, for
// the loop to pass on as it came, others parsed. A request whose reused
// connection turns out to have been closed by the upstream before it
// answered anything is retried once on a new connection (the loop's
// requests are all GET or HEAD). The caller ends the exchange with
// p.done.
func (p *pool) exchange(client syscall.RawConn, toHEAD bool, write func(*bufio.Writer)) (*pconn, *plainAnswer, *http.Response, error) {
	for attempt := 0; ; attempt++ {
		pc, err := p.get(client)
		if err != nil {
			return nil, nil, nil, err
		}
		answered, err := p.send(pc, write)
		if err == nil {
			a, resp, err := p.readHead(pc, toHEAD)
			if err == nil {
				return pc, a, resp, nil
			}
			answered = true
		}
		p.done(pc, false)
		switch {
		case pc.clientGone.Load():
			return nil, nil, nil, errClientLeft
		case pc.aborted.Load():
			return nil, nil, nil, &timeoutError{fmt.Sprintf("upstream %s did not answer within %s", p.addr, p.headerTimeout)}
		case attempt == 0 && pc.reused && !answered:
			continue
		}
		return nil, nil, nil, err
	}
}

var errClientLeft = errors.New("the client left")

// timeoutError is a net.Error that says it is a timeout (504).
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// send writes the request and waits for the first byte of the answer;
// answered reports whether one came.
func (p *pool) send(pc *pconn, write func(*bufio.Writer)) (answered bool, err error) {
	write(pc.bw)
	if err := pc.bw.Flush(); err != nil {
		return false, err
	}
	pc.waitSince.Store(time.Now().UnixNano())
	if _, err = pc.br.Peek(1); err != nil {
		return false, fmt.Errorf("upstream %s closed the connection: %w", p.addr, err)
	}
	return true, nil
}

var (
	// The requests the loop's parsed answers are read for: only their
	// method is looked at.
	getRequest  = &http.Request{Method: http.MethodGet}
	headRequest = &http.Request{Method: http.MethodHead}
)

// readHead reads the answer head, skipping 1xx informational answers.
func (p *pool) readHead(pc *pconn, toHEAD bool) (*plainAnswer, *http.Response, error) {
	defer pc.waitSince.Store(0)
	req := getRequest
	if toHEAD {
		req = headRequest
	}
	for {
		head, err := peekHead(pc.br)
		if err != nil {
			return nil, nil, err
		}
		if head == nil {
			return nil, nil, fmt.Errorf("upstream %s sent an answer head over %d bytes", p.addr, p.headSize)
		}
		if a, ok := parsePlain(head, toHEAD); ok {
			return a, nil, nil
		}
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, nil, fmt.Errorf("upstream %s switched protocols unasked", p.addr)
		case resp.StatusCode >= 200:
			return nil, resp, nil
		}
	}
}
