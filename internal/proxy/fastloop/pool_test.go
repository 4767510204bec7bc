package fastloop

import (
	"net"
	"testing"

	"github.com/hoistdev/hoist/internal/waittest"
)

// TestWatchdogDozesWhenNothingIsInFlight: with only idle connections the
// watchdog stops ticking (a timer firing while the proxy is idle costs a
// WebSocket round trip its latency), and a request wakes it.
func TestWatchdogDozesWhenNothingIsInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	p := newPool(ln.Addr().String(), 0, 4096)
	defer p.closeIdle()
	dozing := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.dozing
	}
	pc, err := p.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if dozing() {
		t.Fatal("dozing with an exchange in flight")
	}
	p.done(pc, true)
	waittest.Within(t, 5*watchEvery, "the watchdog to doze after the last exchange ended", dozing)
	pc, err = p.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if dozing() {
		t.Error("a new exchange did not wake the watchdog")
	}
	p.done(pc, false)
}
