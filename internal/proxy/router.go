package proxy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// Defaults of a route.
const (
	DefaultHealthTimeout = 30 * time.Second
	DefaultDrainTimeout  = 30 * time.Second
	// DefaultMaxBodyBytes is 64 MiB: more than forms, JSON and photos
	// from a phone need, and little enough that one client cannot keep
	// an app busy taking in an endless upload. An app that takes large
	// uploads raises it.
	DefaultMaxBodyBytes = 64 << 20
)

// validateRoute checks a route and fills in its defaults. Host names are
// lower-cased.
func validateRoute(r *hostproto.Route) error {
	if r.App == "" || strings.ContainsAny(r.App, "/ \t\n?#%") {
		return fmt.Errorf("route: invalid app %q", r.App)
	}
	if len(r.Hosts) == 0 {
		return fmt.Errorf("route %s: no hosts", r.App)
	}
	for i, h := range r.Hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if !validHost(h) {
			return fmt.Errorf("route %s: invalid host %q (want app.example.com or *.example.com)", r.App, r.Hosts[i])
		}
		r.Hosts[i] = h
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		return fmt.Errorf("route %s: path prefix %q must start with /", r.App, r.PathPrefix)
	}
	host, port, err := net.SplitHostPort(r.Upstream)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("route %s: upstream %q is not host:port", r.App, r.Upstream)
	}
	if r.HealthPath == "" {
		r.HealthPath = "/up"
	}
	if !strings.HasPrefix(r.HealthPath, "/") {
		return fmt.Errorf("route %s: health path %q must start with /", r.App, r.HealthPath)
	}
	if r.HealthTimeout.Duration <= 0 {
		r.HealthTimeout.Duration = DefaultHealthTimeout
	}
	if r.DrainTimeout.Duration <= 0 {
		r.DrainTimeout.Duration = DefaultDrainTimeout
	}
	if r.MaxBodyBytes <= 0 {
		r.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if r.Maintenance != nil {
		if err := validateMaintenance(r.Maintenance, r.App); err != nil {
			return err
		}
	}
	return validatePages(r.App, r.Pages)
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	rest, _ := strings.CutPrefix(h, "*.")
	if rest == "" {
		return false
	}
	for label := range strings.SplitSeq(rest, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// routePrefix is r's path prefix without its trailing slash; "" for all.
func routePrefix(r *hostproto.Route) string { return strings.TrimSuffix(r.PathPrefix, "/") }

// entry is a route with its live upstream and its counters.
type entry struct {
	route       hostproto.Route
	prefix      string // without trailing slash; "" for every path
	prefixSlash string // prefix + "/"
	up          *upstream
	m           *appMetrics
	// maintenance is the page answered while the route is in
	// maintenance.
	maintenance string
}

func (e *entry) matchPath(path string) bool {
	return e.prefix == "" || path == e.prefix || strings.HasPrefix(path, e.prefixSlash)
}

// table is an immutable snapshot of the routes, swapped whole behind an
// atomic pointer: the request path reads it without a lock.
type table struct {
	all   []*entry            // by app
	exact map[string][]*entry // host -> entries, longest prefix first
	wild  map[string][]*entry // ".example.com" -> entries, longest prefix first
}

func newTable(entries []*entry) *table {
	t := &table{all: entries, exact: map[string][]*entry{}, wild: map[string][]*entry{}}
	slices.SortFunc(t.all, func(a, b *entry) int { return strings.Compare(a.route.App, b.route.App) })
	for _, e := range t.all {
		for _, h := range e.route.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				t.wild[suffix] = append(t.wild[suffix], e)
			} else {
				t.exact[h] = append(t.exact[h], e)
			}
		}
	}
	byPrefix := func(a, b *entry) int { return len(b.prefix) - len(a.prefix) }
	for _, es := range t.exact {
		slices.SortStableFunc(es, byPrefix)
	}
	for _, es := range t.wild {
		slices.SortStableFunc(es, byPrefix)
	}
	return t
}

// lookup finds the route for a host (lower case, no port) and path: an
// exact host name first, then a wildcard, longest path prefix first.
func (t *table) lookup(host, path string) *entry {
	for _, e := range t.exact[host] {
		if e.matchPath(path) {
			return e
		}
	}
	if len(t.wild) > 0 {
		if i := strings.IndexByte(host, '.'); i > 0 {
			for _, e := range t.wild[host[i:]] {
				if e.matchPath(path) {
					return e
				}
			}
		}
	}
	return nil
}

func (t *table) byApp(app string) *entry {
	for _, e := range t.all {
		if e.route.App == app {
			return e
		}
	}
	return nil
}

// conflict names another app that already serves one of r's hosts
// with the same path prefix.
func (t *table) conflict(r *hostproto.Route) error {
	p := routePrefix(r)
	for _, e := range t.all {
		if e.route.App == r.App || e.prefix != p {
			continue
		}
		for _, h := range r.Hosts {
			if slices.Contains(e.route.Hosts, h) {
				return fmt.Errorf("route %s: %s%s is already served by app %s", r.App, h, r.PathPrefix, e.route.App)
			}
		}
	}
	return nil
}

// hostOf returns the request's host name, lower case, without port or
// trailing dot; it allocates only for upper-case names.
func hostOf(hostport string) string {
	h := hostport
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h)
}
