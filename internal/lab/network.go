package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// ensureBridge creates the lab's bridge with the subnet's .1 address.
func ensureBridge(ctx context.Context, o Options) error {
	br := bridgeName(o.Name)
	if ipCmd(ctx, "link", "show", br) == nil {
		return nil
	}
	gw, err := hostAddr(o.Subnet, -1)
	if err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", gw + "/24", "dev", br},
		{"link", "set", br, "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// network gives the machine its namespace and address, configured from
// outside before boot: the machine shares the namespace and keeps it.
func (m *machine) network(ctx context.Context, o Options) error {
	ns := m.Name
	if ipCmd(ctx, "-n", ns, "link", "show", "eth0") == nil {
		return nil // set up by an earlier boot
	}
	gw, err := hostAddr(o.Subnet, -1)
	if err != nil {
		return err
	}
	veth := vethName(o.Name, m.index)
	peer := veth + "p"
	// Leftovers of an earlier lab whose namespace the kernel has not
	// reaped yet would make the names below collide.
	ipCmd(ctx, "netns", "del", ns)
	ipCmd(ctx, "link", "del", veth)
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", peer},
		{"link", "set", veth, "master", bridgeName(o.Name), "up"},
		{"link", "set", peer, "netns", ns},
		{"-n", ns, "link", "set", peer, "name", "eth0"},
		{"-n", ns, "addr", "add", m.Addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", gw},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return fmt.Errorf("network for %s: %w", m.Name, err)
		}
	}
	return nil
}

func ipCmd(ctx context.Context, args ...string) error {
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// checkSubnetFree refuses a subnet that an interface other than the lab's
// bridge already uses: two labs whose names hash alike, or a real network.
// Adding the bridge address would route that network to the lab.
func checkSubnetFree(o Options) error {
	p, err := netip.ParsePrefix(o.Subnet)
	if err != nil {
		return fmt.Errorf("lab subnet %q: %w", o.Subnet, err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Name == bridgeName(o.Name) {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			q, err := netip.ParsePrefix(n.String())
			if err == nil && q.Addr().Unmap().Is4() && q.Overlaps(p) {
				return usererr.New("lab %s would use %s, which interface %s already has (%s)", o.Name, o.Subnet, ifc.Name, n).
					WithHint("pick another lab name (--name) or subnet")
			}
		}
	}
	return nil
}

// leftoverNetns lists network namespaces named like this lab's machines,
// for Down to remove when the state file that names them is gone.
func leftoverNetns(lab string) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(machinePrefix(lab)) + "[0-9]+$")
	var out []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// ShapeUplink limits the traffic between this machine and the lab's
// hosts to rate (tc's units: 20mbit, 1gbit) each way, as an operator's
// uplink would; the hosts still talk to each other at full speed, since
// what the bridge forwards between them passes none of this machine's
// own queues. An empty rate removes the limit.
func ShapeUplink(ctx context.Context, o Options, rate string) error {
	if err := o.defaults(); err != nil {
		return err
	}
	if rate != "" && !validRate.MatchString(rate) {
		return usererr.New("%q is not a rate: write it as tc does, like 20mbit", rate)
	}
	br, ifb := bridgeName(o.Name), ifbName(o.Name)
	// Removing what is not there fails; either way it is gone.
	tcCmd(ctx, "qdisc", "del", "dev", br, "root")
	tcCmd(ctx, "qdisc", "del", "dev", br, "ingress")
	ipCmd(ctx, "link", "del", ifb)
	if rate == "" {
		return nil
	}
	// A token bucket on each way out: the bridge's own queue for what
	// this machine sends, and for what it receives a device the bridge's
	// incoming traffic is redirected through.
	tbf := func(dev string) []string {
		return []string{"qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "400ms"}
	}
	steps := []func() error{
		func() error { return tcCmd(ctx, tbf(br)...) },
		func() error { return ipCmd(ctx, "link", "add", ifb, "type", "ifb") },
		func() error { return ipCmd(ctx, "link", "set", ifb, "up") },
		func() error { return tcCmd(ctx, tbf(ifb)...) },
		func() error { return tcCmd(ctx, "qdisc", "add", "dev", br, "handle", "ffff:", "ingress") },
		func() error {
			return tcCmd(ctx, "filter", "add", "dev", br, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
				"action", "mirred", "egress", "redirect", "dev", ifb)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("shape the uplink of lab %s: %w", o.Name, err)
		}
	}
	return nil
}

func ifbName(lab string) string { return "hlbi-" + lab }

var validRate = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$`)

func tcCmd(ctx context.Context, args ...string) error {
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "tc", args...)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}
