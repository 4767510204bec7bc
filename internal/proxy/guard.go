package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"sync"
	"syscall"
	"time"
)

// http.Transport reuses an upstream connection once an answer is read,
// and closes one on which bytes arrive while it is idle; but it looks
// at those bytes in its read loop, which may run only after the
// connection has been handed to the next request. Bytes an upstream
// sent beyond its answer (a body to HEAD, more than its Content-Length,
// or later) could then be read as that request's answer, another
// client's. guardedConn closes the gap: it hands the transport bytes
// only once a request has been given the connection (GotConn) while its
// reader was waiting on an empty socket; bytes read before that mark it
// bad, and it fails.

// errUnsolicited fails a connection on which the upstream sent bytes
// nobody asked for.
var errUnsolicited = errors.New("the upstream sent bytes beyond its answer")

// assignWait bounds the wait, in GotConn, for the transport's reader to
// wait on the socket: a reader that does not has bytes left over, and
// the transport closes the connection.
const assignWait = time.Second

type guardedConn struct {
	net.Conn
	raw syscall.RawConn

	mu      sync.Mutex
	open    bool          // a request has the connection: bytes read are its answer
	parked  bool          // the reader found the socket empty and waits on it
	bad     bool          // unsolicited bytes came, or the connection is closed
	changed chan struct{} // closed (and replaced) when parked or bad change
}

// guardedDial dials like dial, and guards the connection.
func guardedDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return c, nil
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			c.Close()
			return nil, err
		}
		return &guardedConn{Conn: c, raw: raw, changed: make(chan struct{})}, nil
	}
}

// notify wakes assign; g.mu is held.
func (g *guardedConn) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	rerr := g.raw.Read(func(fd uintptr) bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.bad {
			n, err = 0, errUnsolicited
			return true
		}
		for {
			n, err = syscall.Read(int(fd), p)
			if err != syscall.EINTR {
				break
			}
		}
		if err == syscall.EAGAIN {
			n, err = 0, nil
			if !g.parked {
				g.parked = true
				g.notify()
			}
			return false
		}
		g.parked = false
		switch {
		case err != nil:
			n, err = 0, os.NewSyscallError("read", err)
		case n == 0:
			err = io.EOF
		case !g.open:
			g.bad = true
			g.notify()
			n, err = 0, errUnsolicited
		}
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}

func (g *guardedConn) Write(b []byte) (int, error) {
	g.mu.Lock()
	bad := g.bad
	g.mu.Unlock()
	if bad {
		return 0, errUnsolicited
	}
	return g.Conn.Write(b)
}

func (g *guardedConn) Close() error {
	g.mu.Lock()
	if !g.bad {
		g.bad = true
		g.notify()
	}
	g.mu.Unlock()
	return g.Conn.Close()
}

// assign gives the connection to a request: once the transport's reader
// waits on an empty socket, and nothing has come, bytes read are the
// request's answer. Otherwise the connection is bad, and the request
// fails on it (the transport retries a request without a body on
// another connection).
func (g *guardedConn) assign() {
	deadline := time.NewTimer(assignWait)
	defer deadline.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = false
	for !g.bad && !g.parked {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			g.mu.Lock()
			g.bad = true
			return
		}
		g.mu.Lock()
	}
	if g.bad {
		return
	}
	// The reader is parked: no read is under way, and none will be
	// until g.mu is let go. Bytes already in the socket came unasked.
	var b [1]byte
	pending := true
	g.raw.Control(func(fd uintptr) {
		_, _, errno := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = errno != syscall.EAGAIN
	})
	if pending {
		g.bad = true
		return
	}
	g.open = true
}

// gotConn assigns a guarded connection to the request that gets it.
func gotConn(info httptrace.GotConnInfo) {
	if g, ok := info.Conn.(*guardedConn); ok {
		g.assign()
	}
}

// guarded is a RoundTripper over a transport that dials guardedConns:
// it tells them which request has them.
type guarded struct{ t *http.Transport }

func (g guarded) RoundTrip(r *http.Request) (*http.Response, error) {
	// A trace of its own: WithClientTrace merges the context's trace
	// (ReverseProxy's) into the one it is given.
	trace := &httptrace.ClientTrace{GotConn: gotConn}
	return g.t.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
}
