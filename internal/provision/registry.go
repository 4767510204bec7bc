package provision

import (
	"context"
	"io"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/registry"
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
	// Estimate prices a spec's topology for a month (cost.go); nil
	// for hosts that cost nothing.
	Estimate func(s Spec, p *Prices) Cost
	// BalancerNetworks are the networks the balancer in front of the
	// hosts sends their proxies requests from; nil when the provider
	// puts no balancer there.
	BalancerNetworks func(s Spec, st *State) []string
	// Targets returns the balancer provision made in front of st's
	// hosts, for a deploy to take each out while it switches.
	Targets func(ctx context.Context, st *State, o ALBOptions) (*Targets, error)
	// PublicSSH says the hosts are reached over the internet, so that
	// an unset infra.ssh_from means this machine's public address.
	PublicSSH bool
	// Where, when set, tells people where the hosts of a spec are.
	Where func(s Spec) string
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

// lookupSpec returns the registration of spec's provider; config
// refuses a spec of any other, so the zero one is for specs made
// otherwise.
func lookupSpec(name string) Registration {
	r, _ := Lookup(name)
	return r
}

// PublicSSH says the hosts of provider name are reached over the
// internet (Registration.PublicSSH).
func PublicSSH(name string) bool { return lookupSpec(name).PublicSSH }

// Where tells people where the hosts of s are, or "".
func Where(s Spec) string {
	if r := lookupSpec(s.Provider); r.Where != nil {
		return r.Where(s)
	}
	return ""
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
