package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is one release's listener, with what is in flight to it.
type upstream struct {
	addr     string
	proxy    *httputil.ReverseProxy
	inflight atomic.Int64

	mu sync.Mutex
	ws map[*wsConn]struct{}
}

func (u *upstream) openWebSockets() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.ws)
}

// drain waits until nothing is in flight to u, up to timeout, then closes
// the WebSockets still open with 1001 Going Away, so that clients
// reconnect (to the new upstream). A WebSocket counts as in flight for as
// long as it is open, so a live session is not cut before the timeout.
func (u *upstream) drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && u.inflight.Load() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	u.mu.Lock()
	conns := make([]*wsConn, 0, len(u.ws))
	for c := range u.ws {
		conns = append(conns, c)
	}
	u.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
}

// drained reports whether u has nothing left in flight.
func (u *upstream) drained() bool { return u.inflight.Load() == 0 }

// checkHealth polls GET path on addr until it answers 2xx or ctx ends.
func checkHealth(ctx context.Context, client *http.Client, addr, path string) error {
	url := "http://" + addr + path
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = resp.Status
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstream %s is not healthy: GET %s: %s", addr, path, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// newTransport is the one transport for all upstreams: loopback
// connections kept alive and reused.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
}

// bufferPool lends the reverse proxy its copy buffers, instead of a new
// 32 KiB buffer per request.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
