package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// buckets are the latency histogram's upper bounds, in seconds.
var buckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// bucketNanos are buckets in nanoseconds, for the request path.
var bucketNanos = func() (b [len(buckets)]int64) {
	for i, s := range buckets {
		b[i] = int64(s * 1e9)
	}
	return
}()

var statusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// appMetrics are one app's counters, atomics only, so that the request
// path takes no lock. They outlive route changes ("-" counts requests
// that matched no route).
type appMetrics struct {
	app        string
	codes      [len(statusClasses)]atomic.Uint64
	hist       [len(buckets) + 1]atomic.Uint64 // per bucket, then +Inf
	sumNanos   atomic.Int64
	websockets atomic.Int64
}

func (m *appMetrics) observe(status int, d time.Duration) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	m.codes[c].Add(1)
	ns := int64(d)
	i := 0
	for i < len(bucketNanos) && ns > bucketNanos[i] {
		i++
	}
	m.hist[i].Add(1)
	m.sumNanos.Add(ns)
}

// metrics holds every app's counters.
type metrics struct {
	mu   sync.Mutex
	apps map[string]*appMetrics
	none *appMetrics
}

func newMetrics() *metrics {
	m := &metrics{apps: map[string]*appMetrics{}}
	m.none = m.app("-")
	return m
}

func (m *metrics) app(name string) *appMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.apps[name]
	if a == nil {
		a = &appMetrics{app: name}
		m.apps[name] = a
	}
	return a
}

// MetricsHandler serves the metrics in Prometheus' text format.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.writeMetrics(w)
	})
}

// writeMetrics writes the exposition by hand: a few counters do not need
// a client library.
func (s *Server) writeMetrics(out io.Writer) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	s.metrics.mu.Lock()
	apps := make([]*appMetrics, 0, len(s.metrics.apps))
	for _, a := range s.metrics.apps {
		apps = append(apps, a)
	}
	s.metrics.mu.Unlock()
	sort.Slice(apps, func(i, j int) bool { return apps[i].app < apps[j].app })

	fmt.Fprintln(w, "# HELP hoist_proxy_requests_total Requests served, by app and status class.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_requests_total counter")
	for _, a := range apps {
		for c := range a.codes {
			if v := a.codes[c].Load(); v > 0 {
				fmt.Fprintf(w, "hoist_proxy_requests_total{app=%s,code=\"%s\"} %d\n", label(a.app), statusClasses[c], v)
			}
		}
	}
	fmt.Fprintln(w, "# HELP hoist_proxy_request_duration_seconds Time to serve a request, by app.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_request_duration_seconds histogram")
	for _, a := range apps {
		var cum uint64
		q := label(a.app)
		for i, b := range buckets {
			cum += a.hist[i].Load()
			fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_bucket{app=%s,le=\"%g\"} %d\n", q, b, cum)
		}
		cum += a.hist[len(buckets)].Load()
		fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_bucket{app=%s,le=\"+Inf\"} %d\n", q, cum)
		fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_sum{app=%s} %g\n", q, float64(a.sumNanos.Load())/1e9)
		fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_count{app=%s} %d\n", q, cum)
	}
	t := s.table.Load()
	fmt.Fprintln(w, "# HELP hoist_proxy_upstream_healthy Whether each app's current upstream passes its health checks.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_upstream_healthy gauge")
	for _, e := range t.all {
		fmt.Fprintf(w, "hoist_proxy_upstream_healthy{app=%s,upstream=%s} %d\n", label(e.route.App), label(e.up.addr), b2i(e.up.healthy.Load()))
	}
	fmt.Fprintln(w, "# HELP hoist_proxy_in_flight_requests Requests being proxied, by app.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_in_flight_requests gauge")
	for _, e := range t.all {
		fmt.Fprintf(w, "hoist_proxy_in_flight_requests{app=%s} %d\n", label(e.route.App), e.up.inflight.Load())
	}
	// No total beside it: sum(hoist_proxy_open_websockets) is one.
	fmt.Fprintln(w, "# HELP hoist_proxy_open_websockets WebSockets open through the proxy, by app.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_open_websockets gauge")
	for _, a := range apps {
		if a.app == "-" {
			continue
		}
		fmt.Fprintf(w, "hoist_proxy_open_websockets{app=%s} %d\n", label(a.app), a.websockets.Load())
	}
	if s.opts.Certs != nil {
		fmt.Fprintln(w, "# HELP hoist_proxy_certificate_expiry_seconds When each served certificate expires (Unix time).")
		fmt.Fprintln(w, "# TYPE hoist_proxy_certificate_expiry_seconds gauge")
		for _, e := range t.all {
			if !e.route.TLS {
				continue
			}
			for _, h := range e.route.Hosts {
				if exp, ok := s.opts.Certs.Expiry(h); ok {
					fmt.Fprintf(w, "hoist_proxy_certificate_expiry_seconds{name=%s} %d\n", label(h), exp.Unix())
				}
			}
		}
	}
}

// labelEscaper escapes a label value as the text exposition format
// says: backslash, double quote and newline, and nothing else (UTF-8
// goes as it is).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// label is a label value, quoted and escaped.
func label(v string) string { return `"` + labelEscaper.Replace(v) + `"` }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
