package hostproto

import (
	"encoding/json"
	"fmt"
	"time"
)

// The proxy's part of the protocol: a route as the host's edge proxy
// serves it, with its maintenance mode, and its status as proxy-status
// reports it. internal/proxy serves routes of these types; its control
// API on the host takes and reports them too.

// Route sends the requests for some host names (and a path prefix) to
// one app's upstream. It is what PUT /v1/routes/{app} takes, as JSON:
//
//	{"hosts": ["app.example.com", "*.example.org"], "path_prefix": "/api",
//	 "upstream": "127.0.0.1:3001", "health_path": "/up",
//	 "health_timeout": "30s", "drain_timeout": "30s", "tls": true, "hsts": true,
//	 "max_body_bytes": 67108864}
type Route struct {
	App string `json:"app"`
	// Hosts are exact names (app.example.com) or one-label wildcards
	// (*.example.com matches a.example.com, not a.b.example.com).
	Hosts []string `json:"hosts"`
	// PathPrefix limits the route to a path and what is below it ("/api"
	// serves /api and /api/x, not /apix); "" or "/" serves every path.
	// Among routes for one host, the longest prefix wins.
	PathPrefix string `json:"path_prefix,omitempty"`
	// Upstream is the release's listener, host:port on loopback.
	Upstream string `json:"upstream"`
	// HealthPath is polled with GET until it answers 2xx before the route
	// goes live, and then every few seconds. Default /up.
	HealthPath string `json:"health_path"`
	// HealthTimeout bounds the wait for a new upstream to turn healthy.
	// Default 30s.
	HealthTimeout Duration `json:"health_timeout"`
	// DrainTimeout bounds how long the old upstream keeps in-flight
	// requests and WebSockets after a switch. Default 30s.
	DrainTimeout Duration `json:"drain_timeout"`
	// TLS serves the route over HTTPS with a certificate from the
	// proxy's issuer (an ACME CA, or its internal CA), and redirects
	// plain HTTP to HTTPS once the certificate is in.
	TLS bool `json:"tls,omitempty"`
	// HSTS adds Strict-Transport-Security to HTTPS answers.
	HSTS bool `json:"hsts,omitempty"`
	// MaxBodyBytes bounds a request's body: 413 beyond it, at once for a
	// declared Content-Length, when it is crossed for a chunked body.
	// Default proxy.DefaultMaxBodyBytes.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Maintenance, when set, answers every request of the route with a
	// 503 page while the app keeps running (maintenance.go).
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// Pages are the app's own pages (HTML) for the 502, 503 and 504 the
	// proxy answers for it.
	Pages map[int]string `json:"pages,omitempty"`
}

// Maintenance is a route's maintenance mode.
type Maintenance struct {
	// Message is shown on the page, as text.
	Message string `json:"message,omitempty"`
	// RetryAfter is sent as Retry-After, in seconds. Default 5m.
	RetryAfter Duration `json:"retry_after"`
	// Since is when maintenance went on.
	Since time.Time `json:"since,omitzero"`
}

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string like "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "30s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n int64
	if json.Unmarshal(b, &n) == nil {
		d.Duration = time.Duration(n)
		return nil
	}
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

// RouteStatus is one route as the control API reports it.
type RouteStatus struct {
	Route
	Healthy bool `json:"healthy"`
	// HealthError is the last failed check's error, if the last failed.
	HealthError string `json:"health_error,omitempty"`
	// CheckedAt is when the upstream was last checked.
	CheckedAt      time.Time `json:"checked_at,omitzero"`
	InFlight       int64     `json:"in_flight"`
	OpenWebSockets int       `json:"open_websockets"`
	// Certificates are each TLS name's certificate: issuer, expiry, how
	// it was obtained, when renewal is due (no expiry: none yet).
	Certificates map[string]CertStatus `json:"certificates,omitempty"`
	// Draining are the route's previous upstreams still draining.
	Draining []DrainStatus `json:"draining,omitempty"`
}

// DrainStatus is an old upstream that is draining.
type DrainStatus struct {
	Upstream       string `json:"upstream"`
	InFlight       int64  `json:"in_flight"`
	OpenWebSockets int    `json:"open_websockets"`
}
