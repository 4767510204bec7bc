package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsExposition parses the metrics back with Prometheus' own
// text parser: label values with a double quote, a backslash, a newline
// and UTF-8 come back as they were, and the names follow Prometheus'
// conventions (_total on counters only).
func TestMetricsExposition(t *testing.T) {
	a := backend(t, "a", true)
	s, _ := newProxy(t, Options{}, true)
	weird := "we\"ird\\app\nü✓\u00a0\u200b"
	setRoute(t, s, route(`sla\sh"quote`, a.addr(), "a.test"))
	m := s.metrics.app(weird)
	m.observe(200, 3*time.Millisecond)
	m.websockets.Add(2)
	var out strings.Builder
	s.writeMetrics(&out)

	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(out.String()))
	if err != nil {
		t.Fatalf("Prometheus cannot parse the metrics: %v\n%s", err, out.String())
	}
	for name, f := range families {
		if f.GetType() != dto.MetricType_COUNTER && strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %s named like a counter", name, f.GetType())
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
	labels := func(family string) map[string]float64 {
		got := map[string]float64{}
		f := families[family]
		if f == nil {
			t.Fatalf("no %s in:\n%s", family, out.String())
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "app" {
					got[l.GetValue()] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
				}
			}
		}
		return got
	}
	if diff := cmp.Diff(map[string]float64{weird: 2, `sla\sh"quote`: 0}, labels("hoist_proxy_open_websockets")); diff != "" {
		t.Errorf("open WebSockets by app (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{weird: 1}, labels("hoist_proxy_requests_total")); diff != "" {
		t.Errorf("requests by app (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{`sla\sh"quote`: 0}, labels("hoist_proxy_in_flight_requests")); diff != "" {
		t.Errorf("in flight by app (-want +got):\n%s", diff)
	}
	if _, ok := families["hoist_proxy_open_websockets_total_current"]; ok {
		t.Error("a gauge named like a counter is still exposed")
	}
}
