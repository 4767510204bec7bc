package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
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
