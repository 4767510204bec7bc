package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthState is an upstream's last health check.
type healthState struct {
	At       time.Time
	Err      string
	Failures int // in a row
}

// unhealthyAfter is how many failed checks in a row take an upstream
// out of service (answers 503 at once) until one passes again.
const unhealthyAfter = 3

// checkOnce does one GET of the health path; 2xx passes.
func checkOnce(ctx context.Context, c *http.Client, addr, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "hoist-proxy-health")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// waitHealthy polls the health path until it answers 2xx or ctx ends.
func waitHealthy(ctx context.Context, c *http.Client, addr, path string) error {
	last := "no answer"
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := checkOnce(cctx, c, addr, path)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstream %s is not healthy: GET %s: %s", addr, path, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchHealth checks u every interval until ctx ends, and takes it out
// of service after unhealthyAfter failures in a row.
func (s *Server) watchHealth(ctx context.Context, u *upstream, path string) {
	t := time.NewTicker(s.opts.HealthInterval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, s.opts.HealthInterval)
		err := checkOnce(cctx, s.health, u.addr, path)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st := &healthState{At: time.Now()}
		if err != nil {
			failures++
			st.Err = err.Error()
			if failures >= unhealthyAfter {
				u.healthy.Store(false)
			}
		} else {
			failures = 0
			u.healthy.Store(true)
		}
		st.Failures = failures
		u.health.Store(st)
	}
}
