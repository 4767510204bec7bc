package proxy

import (
	"net"
	"sync/atomic"
	"time"
)

// progressConn pushes its write deadline back before each write: a peer
// that stops reading is cut off after timeout, one that reads slowly is
// not. A deadline set on it, if sooner, stands (the relay's close frame
// has a second to go out).
type progressConn struct {
	net.Conn
	timeout time.Duration
	set     atomic.Int64 // the deadline set, unix nanos; 0 if none
}

func (c *progressConn) Write(b []byte) (int, error) {
	d := time.Now().Add(c.timeout)
	if set := c.set.Load(); set != 0 && set < d.UnixNano() {
		d = time.Unix(0, set)
	}
	c.Conn.SetWriteDeadline(d)
	return c.Conn.Write(b)
}

func (c *progressConn) SetWriteDeadline(t time.Time) error {
	c.remember(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *progressConn) SetDeadline(t time.Time) error {
	c.remember(t)
	return c.Conn.SetDeadline(t)
}

func (c *progressConn) remember(t time.Time) {
	if t.IsZero() {
		c.set.Store(0)
	} else {
		c.set.Store(t.UnixNano())
	}
}
