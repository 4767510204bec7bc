// Package provision makes the hosts an app runs on: it compares what
// hoist.yml's infra section asks for with what exists (found by hoist's
// tags, never by name alone), shows the difference with its monthly
// cost, carries it out, and records what it made in one state file that
// the other verbs read to find the hosts. Providers register themselves
// (registry.go): "lab" (local systemd-nspawn machines from a bare cloud
// image) and "aws" (EC2, with an optional Application Load Balancer). Every host boots with cloud-init
// user data from internal/cloudinit, so its first SSH connection is
// verified against a host key hoist made; hoist then replaces that key.
package provision

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/proxy"
)

// Tag keys on everything hoist makes. Resources are found again by the
// app and environment tags together; the others say what each one is.
const (
	TagApp  = "hoist:app"
	TagEnv  = "hoist:env"
	TagRole = "hoist:role" // the resource's logical name, like host-0
)

// Spec is the infra section of one app's hoist.yml, with what the
// providers need from the rest of it.
type Spec struct {
	App, Env     string
	Provider     string
	Region       string
	Zones        []string
	InstanceType string
	Count        int
	DiskGB       int
	Image        string
	Balancer     string
	Certificate  string
	// Names the ALB's certificate is requested for: proxy.hosts.
	Names   []string
	SSHFrom []string
	User    string
	// HealthPath and TargetPort are what the balancer checks and sends
	// traffic to on each host.
	HealthPath string
	TargetPort int
	// DNSZone is the Route 53 zone the app's names are kept in, if
	// hoist.yml's dns section uses Route 53: it is priced.
	DNSZone string
	// Proxied says hoist's proxy takes the app's requests on each host
	// (proxy.hosts); ACME that the hosts copy certificates from the one
	// that obtains them (tls: acme); Relay that they pass releases on to
	// each other (deploy.relay); Between are the other ports they reach
	// on each other. The network rules (network.go) follow from them.
	Proxied, ACME, Relay bool
	Between              []Port
}

// SpecFrom reads a loaded config's infra section.
func SpecFrom(c *config.Config) Spec {
	in := c.Infra
	// hoist's proxy takes requests for the app on each host, and answers
	// the balancer's checks for it (the balancer sends no name the
	// app's route knows).
	port, health := 80, proxy.BalancerCheckPath(c.App)
	if len(c.Proxy.Hosts) == 0 {
		port, health = c.Run.Port, c.Health.Path
	}
	zone := ""
	if c.DNS.Provider == "route53" {
		zone = c.DNS.Zone
	}
	var between []Port
	for _, name := range c.AccessoryNames() {
		if a := c.Accessories[name]; a.Listen != config.ListenLoopback {
			between = append(between, Port{a.Port, "accessory " + name + " (" + a.Service + ")"})
		}
	}
	return Spec{
		App: c.App, Env: in.Env, Provider: in.Provider, Region: in.Region,
		Zones: append([]string(nil), in.Zones...), InstanceType: in.InstanceType, Count: in.Count,
		DiskGB: in.DiskGB, Image: in.Image, Balancer: in.Balancer, Certificate: in.Certificate,
		Names: append([]string(nil), c.Proxy.Hosts...), SSHFrom: append([]string(nil), in.SSHFrom...),
		User: in.User, HealthPath: health, TargetPort: port, DNSZone: zone,
		Proxied: len(c.Proxy.Hosts) > 0, ACME: c.Proxy.TLS.Mode == config.TLSACME, Relay: c.Deploy.RelayOn(), Between: between,
	}
}

// Tags are the tags every resource of the spec carries, role aside.
func (s *Spec) Tags() map[string]string { return map[string]string{TagApp: s.App, TagEnv: s.Env} }

// HostName is the logical and host name of host i: APP-ENV-i.
func (s *Spec) HostName(i int) string { return fmt.Sprintf("%s-%s-%d", s.App, s.Env, i) }

// Zone is the zone host i goes in: the zones in turn.
func (s *Spec) Zone(i int) string {
	if len(s.Zones) == 0 {
		return ""
	}
	return s.Zones[i%len(s.Zones)]
}

// Resource is one thing a provider makes.
type Resource struct {
	// Kind is what it is: "instance", "subnet", "load balancer"...
	Kind string `json:"kind"`
	// Name is its logical name, unique within the app and environment:
	// the value of its hoist:role tag.
	Name string `json:"name"`
	// ID is the provider's id, once it exists.
	ID string `json:"id,omitempty"`
	// Props sums up what matters of it; a difference between what is
	// wanted and what exists is a change.
	Props string `json:"props"`
	// Mutable says a difference in Props is changed in place; otherwise
	// the resource is replaced.
	Mutable bool `json:"-"`
}

func (r Resource) key() string { return r.Kind + "/" + r.Name }

// Action is what a plan does to one resource.
type Action string

// Actions, in the words a plan prints.
const (
	Create  Action = "create"
	Update  Action = "update"
	Replace Action = "replace"
	Delete  Action = "delete"
)

// Change is one action of a plan. For an update or a replacement, Was
// is the resource as it exists.
type Change struct {
	Action   Action    `json:"action"`
	Resource Resource  `json:"resource"`
	Was      *Resource `json:"was,omitempty"`
}

// Diff compares what is wanted with what exists: creations and changes
// in the order wanted lists them, then deletions in the reverse of the
// order found, so that dependents go first.
func Diff(want, have []Resource) []Change {
	found := map[string]Resource{}
	for _, r := range have {
		found[r.key()] = r
	}
	wanted := map[string]bool{}
	var out []Change
	for _, w := range want {
		wanted[w.key()] = true
		h, ok := found[w.key()]
		switch {
		case !ok:
			out = append(out, Change{Action: Create, Resource: w})
		case h.Props != w.Props:
			w.ID = h.ID
			was := h
			a := Update
			if !w.Mutable {
				a = Replace
			}
			out = append(out, Change{Action: a, Resource: w, Was: &was})
		}
	}
	for i := len(have) - 1; i >= 0; i-- {
		if !wanted[have[i].key()] {
			out = append(out, Change{Action: Delete, Resource: have[i]})
		}
	}
	return out
}

// Inventory is what exists for an app and environment.
type Inventory struct {
	Resources []Resource
	Hosts     []Host
	Balancer  *Balancer
}

// ApplyEnv is what a provider gets from the engine while it applies.
type ApplyEnv struct {
	// UserData returns the cloud-init user data for a new host.
	UserData func(ctx context.Context, host string) ([]byte, error)
	// Log receives progress for people.
	Log io.Writer
}

// Provider makes and finds resources of one kind of infrastructure.
type Provider interface {
	// Desired lists what the spec asks for, in the order of creation.
	// It asks nothing of the provider, so that a plan can be made offline.
	Desired() []Resource
	// Observe finds what exists for the app and environment, by tags.
	Observe(ctx context.Context) (*Inventory, error)
	// Apply carries out changes, in order.
	Apply(ctx context.Context, changes []Change, env ApplyEnv) error
	// Destroy removes everything Observe finds.
	Destroy(ctx context.Context, inv *Inventory, log io.Writer) error
}

// Plan is what provision would do, with what the result costs.
type Plan struct {
	App      string   `json:"app"`
	Env      string   `json:"env"`
	Provider string   `json:"provider"`
	Region   string   `json:"region,omitempty"`
	Changes  []Change `json:"changes"`
	// Existing counts resources that exist and stay as they are.
	Existing int  `json:"unchanged"`
	Cost     Cost `json:"monthly_cost"`
	// Compare is the same topology with each front, for AWS.
	Compare []Comparison `json:"compare,omitempty"`
}

// Counts returns how many changes of each action the plan holds.
func (p *Plan) Counts() map[Action]int {
	n := map[Action]int{}
	for _, c := range p.Changes {
		n[c.Action]++
	}
	return n
}

// Summary is a one-line account of the plan's changes.
func (p *Plan) Summary() string {
	if len(p.Changes) == 0 {
		return fmt.Sprintf("nothing to change: %d resource(s) are as hoist.yml says", p.Existing)
	}
	n := p.Counts()
	var parts []string
	for _, a := range []Action{Create, Update, Replace, Delete} {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", n[a], a))
		}
	}
	return strings.Join(parts, ", ")
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
