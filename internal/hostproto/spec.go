package hostproto

import (
	"errors"
	"fmt"
	"time"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/signkey"
)

// CookieVar is the environment variable of an OTP release's cookie:
// a secret, never in a unit that every user of the host reads.
const CookieVar = "RELEASE_COOKIE"

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
	// TrustedProxies are the networks (CIDR) the proxy keeps the
	// X-Forwarded-* headers of, for this app; the proxy trusts those of
	// every app on the host. Only setup applies them.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// TrustedBalancers are the networks (CIDR) of the balancer hoist
	// provisioned, whose X-Forwarded-For, -Proto and -Port alone the
	// proxy keeps (an ALB passes the client's other headers on).
	TrustedBalancers []string `json:"trusted_balancers,omitempty"`
	// Certs is how this host's proxy gets the app's certificates: the
	// challenges, the DNS provider's credentials on the host that
	// obtains them, the peers. Only setup sends it; nil leaves the plan
	// on the host as it is, and a plan without names removes it.
	Certs *CertPlan `json:"certs,omitempty"`
	// Store is where the host fetches releases from, and the key whose
	// records it trusts. Only setup sends it; nil leaves the host's as it
	// is, and one without a bucket removes it.
	Store *StoreSpec `json:"store,omitempty"`
}

// Proxied reports whether the app runs behind the edge proxy.
func (s *Spec) Proxied() bool { return len(s.ProxyHosts) > 0 }

// CheckApp refuses an app name that is unsafe in paths and unit names,
// or that would take one of hoist's own names (internal/names): the
// client refuses it too, this is for any other client.
func CheckApp(name string) error {
	if why := names.CheckApp(name); why != "" {
		return errors.New(why)
	}
	return nil
}

// Validate checks a spec received from the client.
func (s *Spec) Validate() error {
	if err := CheckApp(s.App); err != nil {
		return err
	}
	if _, ok := s.Env[CookieVar]; ok {
		return fmt.Errorf("spec of %s sets %s in the unit, which every user of the host reads: make it a secret", s.App, CookieVar)
	}
	switch {
	case s.Command == "":
		return fmt.Errorf("spec of %s has no command", s.App)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("spec of %s has invalid port %d", s.App, s.Port)
	case s.HealthTimeout <= 0 || s.HealthInterval <= 0:
		return fmt.Errorf("spec of %s has no health timing", s.App)
	case s.KeepReleases < 2:
		return fmt.Errorf("spec of %s keeps fewer than 2 releases", s.App)
	}
	if s.Store != nil {
		return s.Store.Validate()
	}
	return nil
}

// StoreSpec is what setup tells a host of the app's store: where it is
// and the key whose records it trusts.
type StoreSpec struct {
	bucket.Location
	// PublicKey is the authorized_keys line of the ed25519 key that
	// signs the app's records.
	PublicKey string `json:"public_key"`
}

// Validate checks a store spec received from the client.
func (s *StoreSpec) Validate() error {
	if s.Bucket == "" {
		return nil // removes the store
	}
	if err := s.Location.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := signkey.ParsePublicKey(s.PublicKey); err != nil {
		return fmt.Errorf("store: public key: %w", err)
	}
	return nil
}
