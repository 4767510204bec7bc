package fastloop

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
)

// bufferedConn is a connection handed to net/http with the bytes the
// loop had read but not used. They are copied out of the loop's buffer,
// which goes back to its pool at once: a long-lived connection (a
// WebSocket) keeps no buffer of the loop's.
type bufferedConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
	// tls is the state of a TLS connection (Conn is then a *tls.Conn,
	// which net/http does not see through the wrapper).
	tls *tls.ConnectionState
}

// TLSConnectionState is the state of the TLS connection under b, nil if
// it is plain: the proxy's ConnContext looks for it.
func (b *bufferedConn) TLSConnectionState() *tls.ConnectionState { return b.tls }

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
// idle connection waits without a buffer; only once the pending bytes
// are read.
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
