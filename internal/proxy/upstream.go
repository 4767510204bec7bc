package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is one release's listener, with what is in flight to it: the
// requests being proxied and the WebSockets open through it.
type upstream struct {
	app  string
	addr string
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

// idleTimeout is how long an idle upstream connection is kept: less than
// the app servers' own keep-alive timeouts, so that a connection the
// upstream has closed is seldom picked.
const idleTimeout = 30 * time.Second

// maxAnswerHead bounds an upstream's answer head, as nginx's default
// proxy_buffer_size does (502 past it): an app has no reason to send
// more, and the proxy holds no more for it.
const maxAnswerHead = 16 << 10

// dialer connects to upstreams on loopback.
var dialer = &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}

// newTransport is the transport of net/http's path (and of the health
// checks): loopback connections kept alive and reused. Its connections
// are guarded (guard.go): use it through guarded.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:            guardedDial(dialer.DialContext),
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        idleTimeout,
		ResponseHeaderTimeout:  headerTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxAnswerHead,
		DisableCompression:     true,
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
