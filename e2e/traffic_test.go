//go:build lab

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/loadtest"
)

// traffic is a client that sends requests without pause to each of some
// hosts, in one loop per host, until finish: what a deploy must not
// disturb. It counts the answers per release and keeps the failures.
type traffic struct {
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	loops   []*loadtest.Loop
}

// send makes one request to addr and returns the body of a 200 answer.
type send func(c *http.Client, addr string) (string, error)

// startTraffic runs send against every address (each loop is bounded),
// until finish or the end of t.
func startTraffic(t *testing.T, addrs []string, s send) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for _, addr := range addrs {
		c := &http.Client{Timeout: 10 * time.Second}
		tr.loops = append(tr.loops, &loadtest.Loop{Name: addr, Send: func() (string, error) { return s(c, addr) }})
	}
	loadtest.Start(&tr.wg, tr.stop, tr.loops...)
	t.Cleanup(tr.finish)
	return tr
}

// finish stops the clients and waits for them; it may be called again.
func (tr *traffic) finish() {
	tr.stopped.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// seen counts the answers by release id.
func (tr *traffic) seen() map[string]int {
	seen := map[string]int{}
	for _, l := range tr.loops {
		for body, n := range l.Bodies() {
			seen[strings.TrimPrefix(body, "hello from release ")] += n
		}
	}
	return seen
}

// check fails t if a request failed or too few were answered to judge.
func (tr *traffic) check(t *testing.T, atLeast int) {
	t.Helper()
	failed := loadtest.Failed(t, tr.loops)
	served := 0
	seen := tr.seen()
	for _, n := range seen {
		served += n
	}
	t.Logf("%d requests answered by %d releases: %v", served, len(seen), seen)
	if failed != 0 {
		t.Errorf("%d requests failed", failed)
	}
	if served < atLeast {
		t.Errorf("only %d requests answered, want at least %d to judge", served, atLeast)
	}
}

// answers returns how many requests release id answered.
func (tr *traffic) answers(id string) int { return tr.seen()[id] }

// viaProxy sends GET / for name through the proxy on port 80.
func viaProxy(name string) send {
	return func(c *http.Client, addr string) (string, error) {
		return get(c, "http://"+addr+"/", name)
	}
}

// viaProxyTLS sends GET / for name through the proxy on port 443 over
// HTTP/2, trusting roots: one client for each address.
func viaProxyTLS(name string, roots *x509.CertPool) send {
	var mu sync.Mutex
	clients := map[string]*http.Client{}
	return func(_ *http.Client, addr string) (string, error) {
		mu.Lock()
		c := clients[addr]
		if c == nil {
			c = labHTTPS(addr, roots, name, true, true)
			clients[addr] = c
		}
		mu.Unlock()
		return get(c, "https://"+name+"/", name)
	}
}

// get sends GET url with Host name ("" for the URL's) and returns the
// body of a 200 answer, or a *statusError.
var get = loadtest.Get

// statusError is an answer other than 200.
type statusError = loadtest.StatusError

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
