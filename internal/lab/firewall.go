package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// A lab's firewall plays the part of a cloud's security group: rules
// applied from outside the hosts, with nftables in each host's network
// namespace before the host boots, so that what a host accepts is
// decided by whoever made it and not by the host. (A firewall inside
// the guest is what cloud-init would set up on a real host; a security
// group is not.) Everything not allowed is dropped, as a security
// group drops it: a connection times out rather than being refused.

// Peer is who a firewall rule lets in, named by role: the lab knows
// their addresses.
type Peer string

// Peers.
const (
	// FromAnyone is every address.
	FromAnyone Peer = "anyone"
	// FromOperator is this machine, as the hosts see it: the bridge's address.
	FromOperator Peer = "operator"
	// FromHosts are the lab's hosts.
	FromHosts Peer = "hosts"
	// FromBalancer is the lab's balancer twin (balancer.go).
	FromBalancer Peer = "balancer"
	// FromNetworks are the rule's Networks.
	FromNetworks Peer = "networks"
)

// FirewallRule lets From reach TCP port Port.
type FirewallRule struct {
	Port int    `json:"port"`
	From Peer   `json:"from"`
	Why  string `json:"why,omitempty"`
	// FromNetworks are the addresses From: FromNetworks lets in (CIDR).
	Networks []string `json:"networks,omitempty"`
}

// Firewall is what the hosts and the balancer twin accept.
type Firewall struct {
	Hosts    []FirewallRule `json:"hosts"`
	Balancer []FirewallRule `json:"balancer,omitempty"`
}

// addrs are the addresses the peers stand for in a lab.
type addrs struct {
	operator netip.Addr
	hosts    []netip.Addr
	balancer netip.Addr
}

// labAddrs are the peers' addresses in subnet with n hosts.
func labAddrs(subnet string, n int) (addrs, error) {
	var a addrs
	gw, err := hostAddr(subnet, -1)
	if err != nil {
		return a, err
	}
	a.operator = netip.MustParseAddr(gw)
	for i := range n {
		h, err := hostAddr(subnet, i)
		if err != nil {
			return a, err
		}
		a.hosts = append(a.hosts, netip.MustParseAddr(h))
	}
	b, err := balancerAddr(subnet)
	if err != nil {
		return a, err
	}
	a.balancer = netip.MustParseAddr(b)
	return a, nil
}

// sources are the networks a rule lets in; nil for anyone.
func (r FirewallRule) sources(a addrs) ([]string, error) {
	one := func(x netip.Addr) string { return netip.PrefixFrom(x, x.BitLen()).String() }
	switch r.From {
	case FromAnyone:
		return nil, nil
	case FromOperator:
		return []string{one(a.operator)}, nil
	case FromHosts:
		var out []string
		for _, h := range a.hosts {
			out = append(out, one(h))
		}
		return out, nil
	case FromBalancer:
		return []string{one(a.balancer)}, nil
	case FromNetworks:
		var out []string
		for _, n := range r.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil || !p.Addr().Is4() {
				return nil, fmt.Errorf("firewall: %q is not an IPv4 network", n)
			}
			out = append(out, p.Masked().String())
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("firewall: a rule for port %d lets in no network", r.Port)
		}
		return out, nil
	}
	return nil, fmt.Errorf("firewall: unknown peer %q", r.From)
}

// nftTable is the table the lab's rules live in, in each namespace.
const nftTable = "hoist_lab"

// ruleset renders rules as an nft script that replaces the table at
// once: established connections and loopback pass, the rules' ports
// from their peers pass, everything else coming in is dropped.
func ruleset(rules []FirewallRule, a addrs) (string, error) {
	var b strings.Builder
	// Declaring the table before deleting it makes the delete succeed
	// the first time; the whole script is one transaction.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", nftTable, nftTable, nftTable)
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n")
	b.WriteString("\t\tiif \"lo\" accept\n\t\tct state established,related accept\n")
	for _, r := range rules {
		if r.Port < 1 || r.Port > 65535 {
			return "", fmt.Errorf("firewall: %d is not a TCP port", r.Port)
		}
		from, err := r.sources(a)
		if err != nil {
			return "", err
		}
		match := ""
		if from != nil {
			slices.Sort(from)
			match = "ip saddr { " + strings.Join(slices.Compact(from), ", ") + " } "
		}
		fmt.Fprintf(&b, "\t\t%stcp dport %d accept comment %q\n", match, r.Port, comment(r))
	}
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}

// comment is what nft keeps beside a rule: who and why, in the
// characters its quoted strings take, at most 128 bytes.
func comment(r FirewallRule) string {
	s := string(r.From)
	if r.Why != "" {
		s += ": " + r.Why
	}
	s = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < ' ' || c > '~' {
			return ' '
		}
		return c
	}, s)
	return s[:min(len(s), 127)]
}

// applyFirewall replaces the rules of network namespace ns.
func applyFirewall(ctx context.Context, ns string, rules []FirewallRule, a addrs) error {
	script, err := ruleset(rules, a)
	if err != nil {
		return err
	}
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin, cmd.Stderr = strings.NewReader(script), &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("firewall of %s: nft: %w: %s", ns, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// firewallHost applies the lab's firewall, if it has one, to host
// machine of a lab of n hosts.
func firewallHost(ctx context.Context, o Options, st *state, machine string, n int) error {
	if st.Firewall == nil {
		return nil
	}
	a, err := labAddrs(o.Subnet, n)
	if err != nil {
		return err
	}
	for i, h := range st.Hosts {
		if i < len(a.hosts) {
			a.hosts[i] = netip.MustParseAddr(h.Addr)
		}
	}
	return applyFirewall(ctx, machine, st.Firewall.Hosts, a)
}

// needNft refuses a lab with a firewall on a machine without nft.
func needNft(st *state) error {
	if st.Firewall == nil {
		return nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return usererr.New("the lab's firewall needs nft, which this machine lacks").
			WithHint("install it: apt-get install nftables")
	}
	return nil
}

// FirewallOf returns the firewall the lab's hosts have, nil for none.
func FirewallOf(o Options) (*Firewall, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	return st.Firewall, nil
}

// FirewallScripts are the nft scripts a lab in subnet with n hosts
// applies to its hosts and to its balancer twin, for tests and for
// people who want to see them.
func FirewallScripts(fw *Firewall, subnet string, n int) (hosts, balancer string, err error) {
	a, err := labAddrs(subnet, n)
	if err != nil {
		return "", "", err
	}
	if hosts, err = ruleset(fw.Hosts, a); err != nil {
		return "", "", err
	}
	balancer, err = ruleset(fw.Balancer, a)
	return hosts, balancer, err
}

// LabAddrs are the addresses of the peers in a lab in subnet with n
// hosts: the operator (the bridge), the hosts and the balancer twin.
func LabAddrs(subnet string, n int) (operator netip.Addr, hosts []netip.Addr, balancer netip.Addr, err error) {
	a, err := labAddrs(subnet, n)
	return a.operator, a.hosts, a.balancer, err
}
