package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// drain retires u, which the table no longer points to: it waits until
// nothing is in flight to u and no WebSocket is open through it, up to
// timeout, then closes the WebSockets still open with 1001 Going Away
// (clients reconnect, to the new upstream). It returns at once;
// WaitDrained waits for it.
func (s *Server) drain(u *upstream, timeout time.Duration) {
	u.mu.Lock()
	if u.done == nil {
		u.done = make(chan struct{})
	}
	u.mu.Unlock()
	// After the table swap: a request that counted itself in u after
	// this sees draining and looks up the new table instead.
	u.draining.Store(true)
	u.stop()
	s.drainMu.Lock()
	s.drains[u.addr] = append(s.drains[u.addr], u)
	s.drainMu.Unlock()
	go func() {
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	wait:
		for u.inflight.Load() > 0 || u.openWebSockets() > 0 {
			select {
			case <-deadline.C:
				break wait
			case <-tick.C:
			}
		}
		u.closeWebSockets()
		u.mu.Lock()
		u.timedOut = u.inflight.Load()
		close(u.done)
		u.mu.Unlock()
		// Forget it after a while; WaitDrained of an unknown address
		// returns at once.
		time.AfterFunc(time.Minute, func() {
			s.drainMu.Lock()
			defer s.drainMu.Unlock()
			us := s.drains[u.addr]
			for i, x := range us {
				if x == u {
					us = append(us[:i:i], us[i+1:]...)
					break
				}
			}
			if len(us) == 0 {
				delete(s.drains, u.addr)
			} else {
				s.drains[u.addr] = us
			}
		})
	}()
}

// closeWebSockets closes u's WebSockets with 1001 Going Away, and any
// opened later at once.
func (u *upstream) closeWebSockets() {
	u.mu.Lock()
	u.closedWS = true
	conns := make([]*wsConn, 0, len(u.ws))
	for c := range u.ws {
		conns = append(conns, c)
	}
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(c.goAway)
	}
	wg.Wait()
}

// WaitDrained blocks until the upstream at addr has drained (nothing in
// flight, WebSockets closed) or ctx ends. An address that is not
// draining has nothing to wait for. It reports requests still in flight
// when the drain timeout ended the drain.
func (s *Server) WaitDrained(ctx context.Context, addr string) error {
	s.drainMu.Lock()
	us := append([]*upstream(nil), s.drains[addr]...)
	s.drainMu.Unlock()
	for _, u := range us {
		select {
		case <-u.done:
		case <-ctx.Done():
			return fmt.Errorf("upstream %s is still draining (%d requests in flight, %d WebSockets): %w",
				addr, u.inflight.Load(), u.openWebSockets(), ctx.Err())
		}
		u.mu.Lock()
		n := u.timedOut
		u.mu.Unlock()
		if n > 0 {
			return fmt.Errorf("upstream %s: %d requests were still in flight at the drain timeout", addr, n)
		}
	}
	return nil
}

// drainingFor lists app's upstreams that are still draining.
func (s *Server) drainingFor(app string) []hostproto.DrainStatus {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	var out []hostproto.DrainStatus
	for _, us := range s.drains {
		for _, u := range us {
			if u.app != app {
				continue
			}
			select {
			case <-u.done:
				continue
			default:
			}
			out = append(out, hostproto.DrainStatus{Upstream: u.addr, InFlight: u.inflight.Load(), OpenWebSockets: u.openWebSockets()})
		}
	}
	return out
}
