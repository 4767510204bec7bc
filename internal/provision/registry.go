package provision

import (
	"context"
	"github.com/hoistdev/hoist/internal/registry"
	"io"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Registration is one kind of infrastructure hoist provisions on, as
// infra.provider names it: what makes its Provider, and what it asks of
// hoist.yml's infra section. Each provider registers itself (lab.go,
// aws.go); cli makes providers and config checks infra.provider through
// the registry, so that a new provider is one file here.
type Registration struct {
	Name string
	// New makes the provider of a spec.
	New func(ctx context.Context, spec Spec, env Env) (Provider, error)
	// Check validates the provider's own fields of the infra section,
	// after the checks every provider shares, returning
	// config.FieldError so that the error names its line.
	Check func(c *config.Config) error
}

// Env is what a provider may take from the machine running hoist.
type Env struct {
	// KnownHosts is hoist's known_hosts, from which the keys of hosts
	// that go are removed.
	KnownHosts string
	// Log receives progress for people.
	Log io.Writer
}

var providers = registry.Of[Registration]{Kind: "provision: provider"}

// Register adds a provider, and its checks to config's. It panics when
// the name is taken: two providers of one name are a programming error.
func Register(r Registration) {
	providers.Add(r.Name, r)
	config.RegisterProvider(r.Name, r.Check)
}

// Lookup returns the provider registered as name.
func Lookup(name string) (Registration, bool) {
	return providers.Lookup(name)
}

// Names are the registered providers, sorted.
func Names() []string {
	return providers.Names()
}

// New makes the provider spec.Provider names.
func New(ctx context.Context, spec Spec, env Env) (Provider, error) {
	r, ok := Lookup(spec.Provider)
	if !ok {
		// config refuses such a spec; this is for specs made otherwise.
		return nil, usererr.New("unknown provider %q", spec.Provider).WithHint("hoist knows %v", Names())
	}
	return r.New(ctx, spec, env)
}
