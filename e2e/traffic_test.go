//go:build lab

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// traffic is a client that sends requests without pause to each of some
// hosts, in one goroutine per host, until finish: what a deploy must not
// disturb. It counts the answers per release and keeps the failures.
type traffic struct {
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup

	mu       sync.Mutex
	served   int
	seen     map[string]int // release id → answers
	failures []string
}

// send makes one request to addr and returns the body of a 200 answer.
type send func(c *http.Client, addr string) (string, error)

// startTraffic runs send against every address, bounded to 1,000,000
// requests and 10 minutes per address, until finish or the end of t.
func startTraffic(t *testing.T, addrs []string, s send) *traffic {
	tr := &traffic{stop: make(chan struct{}), seen: map[string]int{}}
	for _, addr := range addrs {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			deadline := time.Now().Add(10 * time.Minute)
			for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				body, err := s(client, addr)
				tr.record(addr, body, err)
			}
		}()
	}
	t.Cleanup(tr.finish)
	return tr
}

func (tr *traffic) record(addr, body string, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err != nil {
		tr.failures = append(tr.failures, addr+": "+err.Error())
		return
	}
	tr.served++
	tr.seen[strings.TrimPrefix(strings.TrimSpace(body), "hello from release ")]++
}

// finish stops the clients and waits for them; it may be called again.
func (tr *traffic) finish() {
	tr.stopped.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// check fails t if a request failed or too few were answered to judge.
func (tr *traffic) check(t *testing.T, atLeast int) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t.Logf("%d requests answered by %d releases: %v", tr.served, len(tr.seen), tr.seen)
	if len(tr.failures) != 0 {
		t.Errorf("%d requests failed, for example %v", len(tr.failures), tr.failures[:min(3, len(tr.failures))])
	}
	if tr.served < atLeast {
		t.Errorf("only %d requests answered, want at least %d to judge", tr.served, atLeast)
	}
}

// answers returns how many requests release id answered.
func (tr *traffic) answers(id string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seen[id]
}

// viaProxy sends GET / for name through the proxy on port 80.
func viaProxy(name string) send {
	return func(c *http.Client, addr string) (string, error) {
		return get(c, "http://"+addr+"/", name)
	}
}

// viaProxyTLS sends GET / for name through the proxy on port 443,
// trusting roots.
func viaProxyTLS(name string, roots *x509.CertPool) send {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name}}}
	return func(_ *http.Client, addr string) (string, error) {
		return get(c, "https://"+addr+"/", name)
	}
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.code, strings.TrimSpace(e.body)) }

// get sends GET url with Host name ("" for the URL's) and returns the
// body of a 200 answer, or a *statusError.
func get(c *http.Client, url, name string) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	if name != "" {
		req.Host = name
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
		return "", &statusError{code: resp.StatusCode, body: string(b)}
	}
	return string(b), nil
}
