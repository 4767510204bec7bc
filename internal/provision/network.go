package provision

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/lab"
)

// The network rules of an app's hosts and of its balancer: which TCP
// port, from whom, and why; nothing else gets in. It is the one
// description both providers make their firewalls from: AWS's security
// groups (aws.go) and the lab's nftables rules in each host's network
// namespace (lab.go), so that a port hoist forgets is as closed in the
// lab as on AWS.

// Peer is who a rule lets in. Each provider says what addresses that is.
type Peer string

// Peers.
const (
	// PeerOperator is who runs hoist: infra.ssh_from, else this machine.
	PeerOperator Peer = "the operator"
	// PeerAnyone is the whole internet.
	PeerAnyone Peer = "anyone"
	// PeerBalancer is the load balancer in front of the hosts.
	PeerBalancer Peer = "the balancer"
	// PeerHosts are the app's hosts, to each other.
	PeerHosts Peer = "the app's hosts"
)

// Rule lets From reach TCP port Port.
type Rule struct {
	Port int
	From Peer
	Why  string
}

func (r Rule) String() string { return fmt.Sprintf("tcp %d from %s (%s)", r.Port, r.From, r.Why) }

// NetworkRules are what the hosts and the balancer (with balancer: alb)
// accept.
type NetworkRules struct {
	Hosts, Balancer []Rule
}

// HostPortsFor lists, sorted and once each, the ports of a host that
// the peers in from reach: PeerAnyone's rules reach everyone.
func (n NetworkRules) HostPortsFor(from ...Peer) []int {
	ports := []int{}
	for _, r := range n.Hosts {
		if r.From == PeerAnyone || slices.Contains(from, r.From) {
			ports = append(ports, r.Port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// Port is a TCP port the app's hosts reach on each other, besides
// hoist's own: an accessory on a private address.
type Port struct {
	Port int
	Why  string
}

// Rules derives the network rules from the spec.
func Rules(s Spec) NetworkRules {
	var n NetworkRules
	n.Hosts = append(n.Hosts, Rule{22, PeerOperator, "SSH, for hoist"})
	switch {
	case s.Balancer == "alb":
		n.Hosts = append(n.Hosts, Rule{s.TargetPort, PeerBalancer, "the balancer's requests and health checks"})
		n.Balancer = []Rule{{80, PeerAnyone, "HTTP, redirected to HTTPS"}, {443, PeerAnyone, "HTTPS"}}
	case s.Proxied:
		n.Hosts = append(n.Hosts, Rule{80, PeerAnyone, "HTTP to hoist's proxy"}, Rule{443, PeerAnyone, "HTTPS to hoist's proxy"})
	default:
		n.Hosts = append(n.Hosts, Rule{s.TargetPort, PeerAnyone, "the app itself (no proxy.hosts)"})
	}
	if s.Count > 1 {
		// With one host there is no neighbour to let in.
		if s.Relay {
			n.Hosts = append(n.Hosts, Rule{host.RelayPort, PeerHosts, "releases passed on between hosts"})
		}
		if s.ACME {
			n.Hosts = append(n.Hosts, Rule{certs.DefaultPeerPort, PeerHosts, "certificates copied from the host that obtains them"})
		}
		for _, p := range s.Between {
			n.Hosts = append(n.Hosts, Rule{p.Port, PeerHosts, p.Why})
		}
	}
	n.Hosts = dedupe(n.Hosts)
	return n
}

// dedupe drops a rule that lets the same peer reach the same port as
// one before it.
func dedupe(rs []Rule) []Rule {
	var out []Rule
	for _, r := range rs {
		if !slices.ContainsFunc(out, func(o Rule) bool { return o.Port == r.Port && o.From == r.From }) {
			out = append(out, r)
		}
	}
	return out
}

// describeRules is a summary of rules for a plan: sorted, so that the
// same rules read the same.
func describeRules(rs []Rule) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("tcp %d from %s", r.Port, r.From))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// BalancerNetworks are the networks the balancer provision puts in
// front of the hosts sends their proxies requests from, which the
// proxies trust with X-Forwarded-*: hoist's VPC behind an ALB (the
// balancer's nodes take addresses in its subnets), the lab's balancer
// twin. None without a balancer.
func BalancerNetworks(s Spec, st *State) []string {
	if r := lookupSpec(s.Provider); s.Balancer == "alb" && r.BalancerNetworks != nil {
		return r.BalancerNetworks(s, st)
	}
	return nil
}

// labBalancerNetworks is the lab's balancer twin's address.
func labBalancerNetworks(s Spec, st *State) []string {
	if st != nil && st.Balancer != nil && st.Balancer.Addr != "" {
		return []string{st.Balancer.Addr + "/32"}
	}
	if _, _, lb, err := lab.LabAddrs(lab.DefaultSubnet(LabName(s)), 0); err == nil {
		return []string{lb.String() + "/32"}
	}
	return nil
}
