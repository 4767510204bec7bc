package kumotest

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Cutter forwards connections to a target and, while Cutting is on,
// closes each once it has carried more than a limit of bytes from the
// client: a bucket that becomes unreachable in the middle of an upload.
type Cutter struct {
	// Cutting turns the cuts on and off.
	Cutting atomic.Bool
	ln      net.Listener
	target  string
	limit   int64
}

// StartCutter forwards to target from a port of address host until the
// test ends, cutting connections past limit bytes.
func StartCutter(t testing.TB, host, target string, limit int64) *Cutter {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cutter{ln: ln, target: target, limit: limit}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for i := 0; i < 10000; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

// Addr is the host:port the cutter listens on.
func (c *Cutter) Addr() string { return c.ln.Addr().String() }

func (c *Cutter) serve(conn net.Conn) {
	defer conn.Close()
	up, err := net.DialTimeout("tcp", c.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(conn, up)
	var sent int64
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := conn.Read(buf)
		if n > 0 {
			if c.Cutting.Load() && sent+int64(n) > c.limit {
				return // mid-request: both ends closed
			}
			sent += int64(n)
			up.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}
