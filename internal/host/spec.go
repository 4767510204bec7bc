package host

import (
	"fmt"
	"regexp"
	"time"

	"github.com/hoistdev/hoist/internal/certs"
)

// Spec is what the client tells a host about an app: enough to write its
// units and check its health. It travels as JSON on stdin so that a
// deploy applies the current hoist.yml without a separate setup.
type Spec struct {
	App            string            `json:"app"`
	Command        string            `json:"command"`
	Port           int               `json:"port"`
	Env            map[string]string `json:"env,omitempty"`
	HealthPath     string            `json:"health_path"`
	HealthTimeout  time.Duration     `json:"health_timeout"`
	HealthInterval time.Duration     `json:"health_interval"`
	KeepReleases   int               `json:"keep_releases"`
	BeforeSwitch   string            `json:"before_switch,omitempty"`
	AfterSwitch    string            `json:"after_switch,omitempty"`
	HookTimeout    time.Duration     `json:"hook_timeout,omitempty"`
	// ErlangNetwork is the private network (CIDR) an OTP release's epmd
	// and distribution listen in; "" means loopback.
	ErlangNetwork string `json:"erlang_network,omitempty"`
	// ProxyHosts, when set, put the app behind the host's edge proxy.
	ProxyHosts   []string      `json:"proxy_hosts,omitempty"`
	PathPrefix   string        `json:"path_prefix,omitempty"`
	DrainTimeout time.Duration `json:"drain_timeout,omitempty"`
	TLS          bool          `json:"tls,omitempty"`
	// TLSInternal has the host's proxy issue certificates from its own
	// CA instead of an ACME CA.
	TLSInternal bool `json:"tls_internal,omitempty"`
	HSTS        bool `json:"hsts,omitempty"`
	// MaxBodyBytes bounds request bodies (0: the proxy's default).
	MaxBodyBytes int64  `json:"max_body_bytes,omitempty"`
	ACMEEmail    string `json:"acme_email,omitempty"`
	ACMECA       string `json:"acme_ca,omitempty"`
	// ACMERoots are PEM roots to trust the ACME CA's API with.
	ACMERoots string `json:"acme_roots,omitempty"`
	// ErrorPages are the app's own pages for the proxy's 502, 503 and
	// 504, by status.
	ErrorPages map[int]string `json:"error_pages,omitempty"`
	// Certs is how this host's proxy gets the app's certificates: the
	// challenges, the DNS provider's credentials on the host that
	// obtains them, the peers. Only setup sends it; nil leaves the plan
	// on the host as it is, and a plan without names removes it.
	Certs *certs.Plan `json:"certs,omitempty"`
}

// Proxied reports whether the app runs behind the edge proxy.
func (s *Spec) Proxied() bool { return len(s.ProxyHosts) > 0 }

var appPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidApp reports whether name is safe to use in paths and unit names.
func ValidApp(name string) bool { return appPattern.MatchString(name) }

// Validate checks a spec received from the client.
func (s *Spec) Validate() error {
	switch {
	case !ValidApp(s.App):
		return fmt.Errorf("invalid app name %q", s.App)
	case s.Command == "":
		return fmt.Errorf("spec of %s has no command", s.App)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("spec of %s has invalid port %d", s.App, s.Port)
	case s.HealthTimeout <= 0 || s.HealthInterval <= 0:
		return fmt.Errorf("spec of %s has no health timing", s.App)
	case s.KeepReleases < 2:
		return fmt.Errorf("spec of %s keeps fewer than 2 releases", s.App)
	}
	return nil
}
