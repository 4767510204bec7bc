package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// goAwayFrame is a server-to-client WebSocket close frame (unmasked)
// with status 1001, Going Away: the client should reconnect.
var goAwayFrame = []byte{0x88, 0x02, 0x03, 0xe9}

// wsConn is the client side of a proxied WebSocket. Its writes are
// serialised with goAway, so a close frame is never written into the
// middle of another write.
type wsConn struct {
	net.Conn
	up *upstream

	mu      sync.Mutex
	closing bool
	once    sync.Once
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *wsConn) Close() error {
	c.once.Do(func() {
		c.up.mu.Lock()
		delete(c.up.ws, c)
		c.up.mu.Unlock()
	})
	return c.Conn.Close()
}

// goAway sends 1001 Going Away and closes the connection.
func (c *wsConn) goAway() {
	c.mu.Lock()
	c.closing = true
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.Conn.Write(goAwayFrame)
	c.mu.Unlock()
	c.Close()
}

// hijackTracker lets the reverse proxy hijack the client connection for
// an upgrade, and records the connection with its upstream so that a
// drain can close it.
type hijackTracker struct {
	http.ResponseWriter
	up *upstream
}

func (h *hijackTracker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	wc := &wsConn{Conn: conn, up: h.up}
	h.up.mu.Lock()
	h.up.ws[wc] = struct{}{}
	h.up.mu.Unlock()
	return wc, brw, nil
}

func (h *hijackTracker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
