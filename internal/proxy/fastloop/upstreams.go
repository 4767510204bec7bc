package fastloop

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Upstreams are pools of upstream connections like the loop's own, for
// requests that net/http's server parsed (HTTP/2): the request goes out
// and its answer comes back on the caller's goroutine, with none of
// http.Transport's per-request goroutine hand-offs.
type Upstreams struct {
	headerTimeout time.Duration
	headSize      int
	pools         sync.Map // address -> *pool
}

// NewUpstreams returns pools whose exchanges wait at most headerTimeout
// (0: no limit) for an answer head of at most maxAnswerHead bytes.
func NewUpstreams(headerTimeout time.Duration, maxAnswerHead int) *Upstreams {
	return &Upstreams{headerTimeout: headerTimeout, headSize: maxAnswerHead}
}

func (u *Upstreams) pool(addr string) *pool {
	if p, ok := u.pools.Load(addr); ok {
		return p.(*pool)
	}
	p, _ := u.pools.LoadOrStore(addr, newPool(addr, u.headerTimeout, u.headSize))
	return p.(*pool)
}

// Close closes the idle connections, and those given back later.
func (u *Upstreams) Close() {
	u.pools.Range(func(_, p any) bool { p.(*pool).closeIdle(); return true })
}

// Answer is an upstream's answer head; its body, Response.Body, reads
// from the pooled connection. Done must end it.
type Answer struct {
	*http.Response
	p    *pool
	pc   *pconn
	stop func() bool // ends the watch on the request's context
}

// Done ends the exchange: the connection goes back to the pool if
// reuse (the body was read to its end) and nothing cut it, else it is
// closed.
func (a *Answer) Done(reuse bool) {
	if !a.stop() {
		reuse = false // the context ended: the exchange may be cut anywhere
	}
	a.p.done(a.pc, reuse && !a.Close)
}

// Exchange sends a request without a body to addr, its head (request
// line, headers, blank line) written by write, and reads the answer's
// head. Informational answers (1xx but 101) go to info. The end of ctx
// (the client cancelled) cuts the exchange, and its connection is not
// reused. A request whose reused connection turns out closed by the
// upstream before any answer is sent once more on a new connection:
// the caller only sends requests that may be repeated (GET, HEAD).
// The error of a head not in time is a net.Error that is a Timeout.
func (u *Upstreams) Exchange(ctx context.Context, addr string, toHEAD bool, write func(*bufio.Writer), info func(*http.Response)) (*Answer, error) {
	p := u.pool(addr)
	req := getRequest
	if toHEAD {
		req = headRequest
	}
	for attempt := 0; ; attempt++ {
		pc, err := p.get(nil)
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() {
			pc.clientGone.Store(true)
			pc.aborted.Store(true)
			pc.c.SetDeadline(aLongTimeAgo)
		})
		answered, err := p.send(pc, write)
		if err == nil {
			var resp *http.Response
			resp, err = p.readParsed(pc, req, info)
			if err == nil {
				return &Answer{Response: resp, p: p, pc: pc, stop: stop}, nil
			}
			answered = true
		}
		stop()
		p.done(pc, false)
		switch {
		case pc.clientGone.Load():
			return nil, fmt.Errorf("%w: %w", errClientLeft, context.Cause(ctx))
		case pc.aborted.Load():
			return nil, &timeoutError{fmt.Sprintf("upstream %s did not answer within %s", p.addr, p.headerTimeout)}
		case attempt == 0 && pc.reused && !answered:
			continue
		}
		return nil, err
	}
}

// readParsed reads the answer head into a Response, passing 1xx
// answers other than 101 to info (dropped if nil).
func (p *pool) readParsed(pc *pconn, req *http.Request, info func(*http.Response)) (*http.Response, error) {
	defer pc.waitSince.Store(0)
	for {
		head, err := peekHead(pc.br)
		if err != nil {
			return nil, err
		}
		if head == nil {
			return nil, fmt.Errorf("upstream %s sent an answer head over %d bytes", p.addr, p.headSize)
		}
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, fmt.Errorf("upstream %s switched protocols unasked", p.addr)
		case resp.StatusCode >= 200:
			return resp, nil
		case info != nil:
			info(resp)
		}
	}
}
