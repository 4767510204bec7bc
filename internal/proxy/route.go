// Package proxy is hoist's edge proxy, run on each host: it routes by
// Host name and path prefix to each app's current upstream on loopback,
// switches upstreams atomically once the new one is healthy, and drains
// the old one (in-flight requests finish; WebSockets are closed with
// 1001 Going Away after the drain timeout). The route table is swapped
// whole behind an atomic pointer, so the request path takes no lock.
package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// Route sends the requests for some host names (and a path prefix) to
// one app's upstream.
type Route struct {
	App        string   `json:"app"`
	Hosts      []string `json:"hosts"`                 // exact names, or *.example.com
	PathPrefix string   `json:"path_prefix,omitempty"` // "/" or "" for all paths
	Upstream   string   `json:"upstream"`              // 127.0.0.1:PORT
	HealthPath string   `json:"health_path"`
	// HealthTimeout bounds the wait for a new upstream to turn healthy.
	HealthTimeout Duration `json:"health_timeout"`
	// DrainTimeout bounds how long the old upstream keeps in-flight
	// requests and WebSockets after a switch.
	DrainTimeout Duration `json:"drain_timeout"`
	// TLS serves the route over HTTPS with a certificate from the ACME CA
	// and redirects plain HTTP to it.
	TLS bool `json:"tls,omitempty"`
	// HSTS adds Strict-Transport-Security to HTTPS answers.
	HSTS bool `json:"hsts,omitempty"`
}

// exactHosts are the names a certificate can be obtained for by HTTP-01
// or TLS-ALPN-01 (wildcards need DNS-01).
func (r *Route) exactHosts() []string {
	var out []string
	for _, h := range r.Hosts {
		if !strings.Contains(h, "*") {
			out = append(out, h)
		}
	}
	return out
}

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}

// Validate checks a route received over the control socket.
func (r *Route) Validate() error {
	if r.App == "" || strings.ContainsAny(r.App, "/ ") {
		return fmt.Errorf("route: invalid app %q", r.App)
	}
	if len(r.Hosts) == 0 {
		return fmt.Errorf("route %s: no hosts", r.App)
	}
	for _, h := range r.Hosts {
		if h == "" || strings.ContainsAny(h, "/ :") || strings.Count(h, "*") > 1 || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
			return fmt.Errorf("route %s: invalid host %q", r.App, h)
		}
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		return fmt.Errorf("route %s: path prefix %q must start with /", r.App, r.PathPrefix)
	}
	if _, _, err := net.SplitHostPort(r.Upstream); err != nil {
		return fmt.Errorf("route %s: upstream %q is not host:port", r.App, r.Upstream)
	}
	if r.HealthPath == "" {
		r.HealthPath = "/up"
	}
	if r.HealthTimeout.Duration <= 0 {
		r.HealthTimeout.Duration = 30 * time.Second
	}
	if r.DrainTimeout.Duration <= 0 {
		r.DrainTimeout.Duration = 30 * time.Second
	}
	return nil
}

// matches reports whether the route serves host (lowercase, no port) and
// path, and how specific the match is, for picking among routes.
func (r *Route) matches(host, path string) (int, bool) {
	hostScore := -1
	for _, h := range r.Hosts {
		switch {
		case h == host:
			hostScore = 2
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && hostScore < 1:
			hostScore = 1
		}
	}
	if hostScore < 0 {
		return 0, false
	}
	p := strings.TrimSuffix(r.PathPrefix, "/")
	if p != "" && path != p && !strings.HasPrefix(path, p+"/") {
		return 0, false
	}
	return hostScore*100000 + len(p), true
}
