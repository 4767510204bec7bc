//go:build lab

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clientLoop sends requests through the proxy without pause, one at a
// time, until stopped (at most 5 minutes), and counts what it sees: a
// 200 is served, anything else failed.
type clientLoop struct {
	name           string
	served, failed atomic.Int64

	mu       sync.Mutex
	failures []string
	bodies   map[string]int // the 200 answers' bodies, trimmed
	lastOK   time.Time
	gap      time.Duration // the longest time with no request served
}

// run sends the requests newReq makes through c until stop is closed.
func (l *clientLoop) run(c *http.Client, newReq func() *http.Request, stop <-chan struct{}) {
	l.mu.Lock()
	l.bodies, l.lastOK = map[string]int{}, time.Now()
	l.mu.Unlock()
	deadline := time.Now().Add(5 * time.Minute)
	for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := c.Do(newReq())
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("%d %s", resp.StatusCode, body)
			}
		}
		now := time.Now()
		l.mu.Lock()
		if err != nil {
			l.failed.Add(1)
			l.failures = append(l.failures, err.Error())
		} else {
			l.served.Add(1)
			l.bodies[strings.TrimSpace(string(body))]++
			l.gap = max(l.gap, now.Sub(l.lastOK))
			l.lastOK = now
		}
		l.mu.Unlock()
	}
}

// takeGap returns the longest gap since the loop started or the last
// call, and starts measuring anew.
func (l *clientLoop) takeGap() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := max(l.gap, time.Since(l.lastOK))
	l.gap = 0
	return g
}

// longestGap takes the longest gap of all loops.
func longestGap(loops []*clientLoop) time.Duration {
	var g time.Duration
	for _, l := range loops {
		g = max(g, l.takeGap())
	}
	return g
}

// String summarises what the loop saw.
func (l *clientLoop) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%s: %d served, %d failed (for example %q), longest gap %s",
		l.name, l.served.Load(), l.failed.Load(), l.failures[:min(3, len(l.failures))], l.gap.Round(time.Millisecond))
}

// waitServed waits until every loop served n more requests, or fails.
func waitServed(t *testing.T, loops []*clientLoop, n int64, within time.Duration) {
	t.Helper()
	start := make([]int64, len(loops))
	for i, l := range loops {
		start[i] = l.served.Load()
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		done := true
		for i, l := range loops {
			done = done && l.served.Load() >= start[i]+n
		}
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range loops {
		t.Log(l)
	}
	t.Fatalf("clients were not served %d more requests within %s", n, within)
}

// request returns a GET of url with Host host.
func request(url, host string) func() *http.Request {
	return func() *http.Request {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		return req
	}
}

// labHTTPS is an HTTPS client that dials addr:443 for any URL, trusts
// roots, and speaks HTTP/2 or, if !h2, HTTP/1.1; keepAlive false opens a
// connection per request.
func labHTTPS(addr string, roots *x509.CertPool, name string, h2, keepAlive bool) *http.Client {
	conf := &tls.Config{RootCAs: roots, ServerName: name}
	if !h2 {
		conf.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: conf, ForceAttemptHTTP2: h2, DisableKeepAlives: !keepAlive,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr+":443")
		},
	}}
}

// holdWebSockets holds a WebSocket to host through the proxy at addr,
// reconnecting each time the proxy closes it with 1001 Going Away, until
// stop; it counts those closes, and reports any other end.
func holdWebSockets(addr, host string, stop <-chan struct{}, goAway *atomic.Int64, abnormal func(string)) {
	for i := 0; i < 100; i++ {
		code, err := holdWebSocket(addr, host, stop)
		switch {
		case err == nil && code == 0:
			return // stopped by the test while open
		case code == 1001:
			goAway.Add(1)
		default:
			abnormal(fmt.Sprintf("%s: code %d, %v", addr, code, err))
			return
		}
	}
}
