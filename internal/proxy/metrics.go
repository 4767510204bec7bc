package proxy

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// buckets are the latency histogram's upper bounds, in seconds.
var buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var statusClasses = [...]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

// metrics are kept by hand in Prometheus' text format: a few counters do
// not need a client library on the hot path.
type metrics struct {
	websockets atomic.Int64

	mu       sync.Mutex
	requests map[[2]string]uint64 // app, status class -> count
	hist     []uint64             // per bucket, plus +Inf
	sum      float64
	count    uint64
	healthy  map[string]bool
}

func newMetrics() *metrics {
	return &metrics{requests: map[[2]string]uint64{}, hist: make([]uint64, len(buckets)+1), healthy: map[string]bool{}}
}

func (m *metrics) observe(app string, status int, d time.Duration) {
	class := "other"
	if c := status / 100; c >= 1 && c <= 5 {
		class = statusClasses[c]
	}
	sec := d.Seconds()
	i := sort.SearchFloat64s(buckets, sec)
	m.mu.Lock()
	m.requests[[2]string{app, class}]++
	m.hist[i]++
	m.sum += sec
	m.count++
	m.mu.Unlock()
}

func (m *metrics) setHealth(app string, ok bool) {
	m.mu.Lock()
	m.healthy[app] = ok
	m.mu.Unlock()
}

// write writes the metrics in Prometheus' text exposition format.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP hoist_proxy_requests_total Requests served, by app and status class.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_requests_total counter")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "hoist_proxy_requests_total{app=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP hoist_proxy_request_duration_seconds Time to serve a request.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_request_duration_seconds histogram")
	var cum uint64
	for i, b := range buckets {
		cum += m.hist[i]
		fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_bucket{le=\"%g\"} %d\n", b, cum)
	}
	cum += m.hist[len(buckets)]
	fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_sum %g\n", m.sum)
	fmt.Fprintf(w, "hoist_proxy_request_duration_seconds_count %d\n", m.count)
	fmt.Fprintln(w, "# HELP hoist_proxy_upstream_healthy Whether each app's upstream passed its last health check.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_upstream_healthy gauge")
	apps := make([]string, 0, len(m.healthy))
	for a := range m.healthy {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	for _, a := range apps {
		v := 0
		if m.healthy[a] {
			v = 1
		}
		fmt.Fprintf(w, "hoist_proxy_upstream_healthy{app=%q} %d\n", a, v)
	}
	fmt.Fprintln(w, "# HELP hoist_proxy_open_websockets WebSockets open through the proxy.")
	fmt.Fprintln(w, "# TYPE hoist_proxy_open_websockets gauge")
	fmt.Fprintf(w, "hoist_proxy_open_websockets %d\n", m.websockets.Load())
}
