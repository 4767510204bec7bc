package provision

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/twin"
	"github.com/hoistdev/hoist/internal/usererr"
)

func init() {
	Register(Registration{Name: config.ProviderLab, Check: checkLab,
		New: func(_ context.Context, spec Spec, env Env) (Provider, error) {
			return NewLab(spec, env.KnownHosts, env.Log), nil
		},
		Estimate:         estimateFree,
		BalancerNetworks: labBalancerNetworks,
		Targets: func(_ context.Context, st *State, o ALBOptions) (*Targets, error) {
			return NewLabTargets(st, o)
		},
		Where: func(s Spec) string {
			name := LabName(s)
			return fmt.Sprintf("the hosts are in lab %s: `hoist lab status --name %s` shows them", name, name)
		},
	})
}

// checkLab validates what the lab asks of the infra section: its
// balancer twin serves the app's names with the lab CA's certificate.
func checkLab(c *config.Config) error {
	in := &c.Infra
	if in.Balancer != config.BalancerALB {
		return nil
	}
	if in.Certificate != "" {
		return config.FieldError("$.infra.certificate", "the lab's balancer gets its certificate from the lab's own CA; an ACM certificate is for provider: aws")
	}
	if len(c.Proxy.Hosts) == 0 {
		return config.FieldError("$.infra.balancer", "the lab's balancer serves HTTPS with a certificate for the app's names: list them in proxy.hosts")
	}
	return nil
}

// labProvider makes hosts as lab machines on this machine, booted from
// the bare cloud image: no key and no hoist on them until cloud-init
// runs the user data, as on a cloud. The lab's labels play the part of
// tags.
type labProvider struct {
	spec Spec
	o    lab.Options
}

// NewLab returns the lab provider for spec. knownHosts is hoist's
// known_hosts, from which the hosts' keys are removed when they go.
func NewLab(spec Spec, knownHosts string, log io.Writer) Provider {
	p := &labProvider{spec: spec, o: lab.Options{
		Name: LabName(spec), KnownHostsPath: knownHosts, Log: log, Labels: spec.Tags(),
		Firewall: LabFirewall(spec),
	}}
	if spec.Balancer == "alb" {
		p.o.Balancer = &lab.BalancerOptions{Names: spec.Names, HealthPath: spec.HealthPath, DeregistrationDelay: labDeregistrationDelay}
	}
	return p
}

// labDeregistrationDelay is the twin's: long enough for a request in
// flight, short next to the ALB's default of 300s, which a deploy on
// the lab would wait out whenever a client keeps a request open.
const labDeregistrationDelay = 10 * time.Second

// LabFirewall is the lab's form of the network rules: the operator is
// infra.ssh_from, else this machine on the lab's bridge; the balancer
// is the lab's balancer twin; the hosts are the lab's.
func LabFirewall(s Spec) *lab.Firewall {
	rules := Rules(s)
	conv := func(rs []Rule) []lab.FirewallRule {
		out := []lab.FirewallRule{}
		for _, r := range rs {
			fr := lab.FirewallRule{Port: r.Port, Why: r.Why}
			switch r.From {
			case PeerOperator:
				fr.From = lab.FromOperator
				if len(s.SSHFrom) > 0 {
					fr.From, fr.Networks = lab.FromNetworks, append([]string(nil), s.SSHFrom...)
				}
			case PeerAnyone:
				fr.From = lab.FromAnyone
			case PeerBalancer:
				fr.From = lab.FromBalancer
			case PeerHosts:
				fr.From = lab.FromHosts
			}
			out = append(out, fr)
		}
		return out
	}
	fw := &lab.Firewall{Hosts: conv(rules.Hosts)}
	if len(rules.Balancer) > 0 {
		fw.Balancer = conv(rules.Balancer)
	}
	return fw
}

// firewallProps sums a lab firewall up for a plan, the same way for
// what is wanted and what the lab has.
func firewallProps(fw *lab.Firewall) string {
	if fw == nil {
		return "none: every port of every host open"
	}
	sum := func(rs []lab.FirewallRule) string {
		var parts []string
		for _, r := range rs {
			from := string(r.From)
			if r.From == lab.FromNetworks {
				from = strings.Join(r.Networks, ", ")
			}
			parts = append(parts, fmt.Sprintf("tcp %d from %s", r.Port, from))
		}
		slices.Sort(parts)
		return strings.Join(parts, "; ")
	}
	out := "hosts: " + sum(fw.Hosts)
	if len(fw.Balancer) > 0 {
		out += "; balancer: " + sum(fw.Balancer)
	}
	return out
}

// LabName is the lab that holds an app's env: "p" and a hash of both,
// within the lab's limit of 8 characters.
func LabName(s Spec) string {
	h := fnv.New32a()
	h.Write([]byte(s.App + "/" + s.Env))
	name := "p" + strconv.FormatUint(uint64(h.Sum32()), 36)
	return name[:min(len(name), 8)]
}

const (
	labKind     = "lab host"
	labFirewall = "firewall"
	labBalancer = "balancer twin"
)

// labBalancerProps sums the twin up, the same way for what is wanted
// and what runs.
func labBalancerProps(bo lab.BalancerOptions) string {
	return fmt.Sprintf("HTTPS for %s with the lab CA's certificate, HTTP redirected, to port 80 of the hosts, health GET %s, deregistration delay %s",
		strings.Join(bo.Names, ", "), bo.HealthPath, bo.DeregistrationDelay)
}

func (p *labProvider) Desired() []Resource {
	var out []Resource
	for i := 0; i < p.spec.Count; i++ {
		out = append(out, Resource{Kind: labKind, Name: p.spec.HostName(i), Props: labProps(true), Mutable: true})
	}
	// Like a security group, in the plan: a change of rules is a change.
	out = append(out, Resource{Kind: labFirewall, Name: "network", Props: firewallProps(p.o.Firewall), Mutable: true})
	if bo := p.o.Balancer; bo != nil {
		out = append(out, Resource{Kind: labBalancer, Name: roleBalancer, Props: labBalancerProps(*bo), Mutable: true})
	}
	return out
}

func labProps(running bool) string {
	if running {
		return "running; bare Debian 12 image with cloud-init"
	}
	return "stopped; bare Debian 12 image with cloud-init"
}

func (p *labProvider) Observe(ctx context.Context) (*Inventory, error) {
	labels, exists, err := lab.LabelsOf(p.o)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{}
	if !exists {
		return inv, nil
	}
	if !maps.Equal(labels, p.o.Labels) {
		return nil, usererr.New("lab %s holds hosts that are not %s's %s (its labels: %v)", p.o.Name, p.spec.App, p.spec.Env, labels).
			WithHint("`hoist lab down --name %s` removes them", p.o.Name)
	}
	st, err := lab.Status(ctx, p.o)
	if err != nil {
		return nil, err
	}
	for i, hs := range st {
		name := p.spec.HostName(i)
		inv.Resources = append(inv.Resources, Resource{Kind: labKind, Name: name, ID: hs.Name, Props: labProps(hs.Running)})
		inv.Hosts = append(inv.Hosts, Host{Name: name, ID: hs.Name, PublicAddr: hs.Addr, PrivateAddr: hs.Addr})
	}
	fw, err := lab.FirewallOf(p.o)
	if err != nil {
		return nil, err
	}
	if len(st) > 0 {
		inv.Resources = append(inv.Resources, Resource{Kind: labFirewall, Name: "network", ID: p.o.Name, Props: firewallProps(fw)})
	}
	b, running, err := lab.BalancerOf(p.o)
	if err != nil {
		return nil, err
	}
	if b != nil {
		props := labBalancerProps(b.Options)
		if !running {
			props = "stopped; " + props
		}
		inv.Resources = append(inv.Resources, Resource{Kind: labBalancer, Name: roleBalancer, ID: b.Addr, Props: props})
		inv.Balancer = &Balancer{Name: "the lab's balancer twin", ID: b.Control, Addr: b.Addr, CA: b.CA}
	}
	return inv, nil
}

func (p *labProvider) Apply(ctx context.Context, changes []Change, env ApplyEnv) error {
	o := p.o
	o.Log = env.Log
	o.UserData = func(h lab.Host) ([]byte, error) {
		i, err := strconv.Atoi(h.Name[strings.LastIndexByte(h.Name, '-')+1:])
		if err != nil {
			return nil, fmt.Errorf("lab host %s: %w", h.Name, err)
		}
		return env.UserData(ctx, p.spec.HostName(i))
	}
	for _, c := range changes {
		if c.Action == Delete && c.Resource.Kind == labKind {
			if err := lab.Trim(ctx, o, p.spec.Count); err != nil {
				return err
			}
			break
		}
	}
	for _, c := range changes {
		if c.Action == Delete && c.Resource.Kind == labBalancer {
			if err := lab.RemoveBalancer(ctx, o); err != nil {
				return err
			}
		}
	}
	// Up makes missing hosts and boots stopped ones, and the firewall and
	// the balancer twin.
	hosts, err := lab.Up(ctx, o, p.spec.Count)
	if err != nil || o.Balancer == nil {
		return err
	}
	return p.registerAll(ctx, hosts)
}

// registerAll makes the twin's targets the hosts, as provision's
// registrations on the ALB.
func (p *labProvider) registerAll(ctx context.Context, hosts []lab.Host) error {
	b, _, err := lab.BalancerOf(p.o)
	if err != nil || b == nil {
		return err
	}
	c := &twin.Client{Socket: b.Control}
	have, err := c.Health(ctx)
	if err != nil {
		return err
	}
	var want, gone []string
	for _, h := range hosts {
		want = append(want, net.JoinHostPort(h.Addr, strconv.Itoa(p.spec.TargetPort)))
	}
	for _, th := range have {
		if !slices.Contains(want, th.Target) {
			gone = append(gone, th.Target)
		}
	}
	if len(gone) > 0 {
		if err := c.Deregister(ctx, gone...); err != nil {
			return err
		}
	}
	return c.Register(ctx, want...)
}

func (p *labProvider) Destroy(ctx context.Context, _ *Inventory, log io.Writer) error {
	o := p.o
	o.Log = log
	return lab.Down(ctx, o)
}
