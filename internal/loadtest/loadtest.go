// Package loadtest sends requests without pause, one at a time, for the
// tests that check a server never drops one: deploys behind the proxy
// and upgrades of the proxy itself, on loopback and on lab hosts.
package loadtest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// Loop is one client sending requests one at a time: Send makes one
// and returns the body of a good answer, or why the answer is not.
type Loop struct {
	Name           string
	Send           func() (string, error)
	Served, Failed atomic.Int64

	mu       sync.Mutex
	failures []string
	bodies   map[string]int // the answers served, by trimmed body
	lastOK   time.Time
	gap      time.Duration // the longest time with nothing served
}

// Run sends requests until stop is closed, for at most 10 minutes and
// a million requests.
func (l *Loop) Run(stop <-chan struct{}) {
	l.mu.Lock()
	l.bodies, l.lastOK = map[string]int{}, time.Now()
	l.mu.Unlock()
	deadline := time.Now().Add(10 * time.Minute)
	for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
		select {
		case <-stop:
			return
		default:
		}
		l.record(l.Send())
	}
}

func (l *Loop) record(body string, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.Failed.Add(1)
		l.failures = append(l.failures, err.Error())
		return
	}
	l.Served.Add(1)
	l.bodies[strings.TrimSpace(body)]++
	l.gap = max(l.gap, now.Sub(l.lastOK))
	l.lastOK = now
}

// Bodies returns how many times each body was served.
func (l *Loop) Bodies() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.bodies))
	for b, n := range l.bodies {
		out[b] = n
	}
	return out
}

// TakeGap returns the longest gap since the loop started or the last
// call, and starts measuring anew.
func (l *Loop) TakeGap() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := max(l.gap, time.Since(l.lastOK))
	l.gap = 0
	return g
}

// String summarises what the loop saw.
func (l *Loop) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%s: %d served, %d failed (for example %q), longest gap %s",
		l.Name, l.Served.Load(), l.Failed.Load(), l.failures[:min(3, len(l.failures))], l.gap.Round(time.Millisecond))
}

// Start runs each loop in a goroutine of wg, until stop, and returns
// them.
func Start(wg *sync.WaitGroup, stop <-chan struct{}, loops ...*Loop) []*Loop {
	for _, l := range loops {
		wg.Go(func() { l.Run(stop) })
	}
	return loops
}

// Get sends GET url through c with Host host ("" for the URL's) and
// returns the body of a 200 answer, or a *StatusError.
func Get(c *http.Client, url, host string) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &StatusError{Code: resp.StatusCode, Body: string(b)}
	}
	return string(b), nil
}

// StatusError is an answer other than 200.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s", e.Code, strings.TrimSpace(e.Body))
}

// WaitServed waits until every loop served n more requests, or fails t.
func WaitServed(t testing.TB, loops []*Loop, n int64, within time.Duration) {
	t.Helper()
	start := make([]int64, len(loops))
	for i, l := range loops {
		start[i] = l.Served.Load()
	}
	if waittest.Poll(within, func() bool {
		for i, l := range loops {
			if l.Served.Load() < start[i]+n {
				return false
			}
		}
		return true
	}) {
		return
	}
	for _, l := range loops {
		t.Log(l)
	}
	t.Fatalf("clients were not served %d more requests within %s", n, within)
}

// LongestGap takes the longest gap of all loops (TakeGap).
func LongestGap(loops []*Loop) time.Duration {
	var g time.Duration
	for _, l := range loops {
		g = max(g, l.TakeGap())
	}
	return g
}

// Failed sums the loops' failed requests, and logs each loop.
func Failed(t testing.TB, loops []*Loop) int64 {
	t.Helper()
	var n int64
	for _, l := range loops {
		t.Log(l)
		n += l.Failed.Load()
	}
	return n
}
