package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/twin"
)

// The lab's balancer twin (internal/twin) plays an ALB in front of the
// lab's hosts: a hoist process in a network namespace of its own on the
// lab's bridge, at the subnet's .2, behind the firewall's balancer rules,
// with a certificate from a CA of the lab's. Its files are in the lab's
// state directory, under balancer/.

// BalancerOptions put the balancer twin in front of the lab's hosts
// (Options.Balancer).
type BalancerOptions struct {
	// Names are what its certificate is for: the app's names.
	Names []string `json:"names"`
	// HealthPath is what it checks each host at.
	HealthPath string `json:"health_path"`
	// DeregistrationDelay bounds a deregistered host's drain. Default 10s.
	DeregistrationDelay time.Duration `json:"deregistration_delay"`
	// Interval is the time between two checks of a host. Default 1s.
	Interval time.Duration `json:"interval"`
	// Exe is the hoist binary that runs it (`hoist lab balancer`).
	// Default: this program.
	Exe string `json:"-"`
}

// Balancer is the twin a lab runs.
type Balancer struct {
	// Addr is its address on the lab's bridge.
	Addr string `json:"addr"`
	// PID is its process.
	PID int `json:"pid"`
	// Control is its control socket (twin.Client).
	Control string `json:"control"`
	// CA is the root certificate (PEM file) its certificate is issued by,
	// for clients to trust.
	CA string `json:"ca"`
	// Delay is its deregistration delay.
	Delay time.Duration `json:"delay"`
	// Options are what it was started with.
	Options BalancerOptions `json:"options"`
}

func balancerNetns(lab string) string { return machinePrefix(lab) + "lb" }
func balancerVeth(lab string) string  { return "hvb-" + lab }
func balancerDir(o Options) string    { return filepath.Join(o.StateDir, "balancer") }

// balancerAddr is the address of the lab's balancer twin: .2 of the
// subnet, below the hosts'.
func balancerAddr(subnet string) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 {
		return "", fmt.Errorf("lab subnet %q must be an IPv4 /24", subnet)
	}
	b := p.Masked().Addr().As4()
	b[3] = 2
	return netip.AddrFrom4(b).String(), nil
}

// ensureBalancer makes the twin's namespace, applies its firewall, and
// starts it, again if it died or its options changed.
func ensureBalancer(ctx context.Context, o Options, st *state, bo BalancerOptions) error {
	if bo.DeregistrationDelay <= 0 {
		bo.DeregistrationDelay = 10 * time.Second
	}
	if bo.Interval <= 0 {
		bo.Interval = time.Second
	}
	if bo.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("balancer twin: %w", err)
		}
		bo.Exe = exe
	}
	addr, err := balancerAddr(o.Subnet)
	if err != nil {
		return err
	}
	ns := balancerNetns(o.Name)
	if err := attach(ctx, o, ns, balancerVeth(o.Name), addr); err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	if st.Firewall != nil {
		a, err := labAddrs(o.Subnet, len(st.Hosts))
		if err != nil {
			return err
		}
		if err := applyFirewall(ctx, ns, st.Firewall.Balancer, a); err != nil {
			return err
		}
	}
	dir := balancerDir(o)
	b := st.Balancer
	if b != nil && twinAlive(b.PID, dir) && slices.Equal(b.Options.Names, bo.Names) && b.Options.HealthPath == bo.HealthPath &&
		b.Options.DeregistrationDelay == bo.DeregistrationDelay && b.Options.Interval == bo.Interval {
		return nil
	}
	if b != nil {
		stopTwin(b.PID, dir)
	}
	ca, err := twin.IssueCert(dir, bo.Names, []string{addr})
	if err != nil {
		return err
	}
	cfg := twin.Config{HTTP: ":80", HTTPS: ":443", Control: filepath.Join(dir, "control.sock"),
		CertFile: filepath.Join(dir, twin.CertFile), KeyFile: filepath.Join(dir, twin.KeyFile),
		StatePath: filepath.Join(dir, "targets.json"), HealthPath: bo.HealthPath,
		Interval: twin.Duration{Duration: bo.Interval}, Timeout: twin.Duration{Duration: bo.Interval},
		HealthyThreshold: 2, UnhealthyThreshold: 2, DeregistrationDelay: twin.Duration{Duration: bo.DeregistrationDelay}}
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, "config.json"), cb, 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "twin.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, bo.Exe, "lab", "balancer", "--config", filepath.Join(dir, "config.json"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startDetached(cmd); err != nil {
		return fmt.Errorf("balancer twin: %w", err)
	}
	go cmd.Wait()
	st.Balancer = &Balancer{Addr: addr, PID: cmd.Process.Pid, Control: cfg.Control, CA: ca, Delay: bo.DeregistrationDelay, Options: bo}
	st.Balancer.Options.Exe = ""
	if err := saveState(o.StateDir, st); err != nil {
		return err
	}
	// Up returns once it takes registrations.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := (&twin.Client{Socket: cfg.Control}).Health(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || !twinAlive(cmd.Process.Pid, dir) {
			return fmt.Errorf("the balancer twin did not start: %w\n%s", err, tail(filepath.Join(dir, "twin.log"), 10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attach gives namespace ns an address on the lab's bridge through a
// veth pair, as network does for a machine.
func attach(ctx context.Context, o Options, ns, veth, addr string) error {
	if ipCmd(ctx, "-n", ns, "link", "show", "eth0") == nil {
		return nil
	}
	gw, err := hostAddr(o.Subnet, -1)
	if err != nil {
		return err
	}
	ipCmd(ctx, "netns", "del", ns)
	ipCmd(ctx, "link", "del", veth)
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", veth + "p"},
		{"link", "set", veth, "master", bridgeName(o.Name), "up"},
		{"link", "set", veth + "p", "netns", ns},
		{"-n", ns, "link", "set", veth + "p", "name", "eth0"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", gw},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// twinAlive reports whether pid is the lab's twin that runs from dir.
func twinAlive(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if !slices.Contains(args, "balancer") || !slices.Contains(args, filepath.Join(dir, "config.json")) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if i := bytes.LastIndexByte(stat, ')'); err != nil || (i > 0 && i+2 < len(stat) && stat[i+2] == 'Z') {
		return false
	}
	return true
}

// stopTwin stops the twin, SIGTERM then SIGKILL, and reports whether it
// is gone.
func stopTwin(pid int, dir string) bool {
	if !twinAlive(pid, dir) {
		return true
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		if !twinAlive(pid, dir) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	return !twinAlive(pid, dir)
}

// removeBalancer stops the twin and removes its namespace and files.
func removeBalancer(ctx context.Context, o Options, st *state) error {
	var errs []error
	if st.Balancer != nil && !stopTwin(st.Balancer.PID, balancerDir(o)) {
		errs = append(errs, fmt.Errorf("stop the balancer twin: pid %d still runs", st.Balancer.PID))
	}
	if err := ipCmd(ctx, "netns", "del", balancerNetns(o.Name)); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err)
	}
	ipCmd(ctx, "link", "del", balancerVeth(o.Name))
	if len(errs) == 0 {
		if err := os.RemoveAll(balancerDir(o)); err != nil {
			errs = append(errs, err)
		}
		st.Balancer = nil
	}
	return errors.Join(errs...)
}

// RemoveBalancer takes the lab's balancer twin away.
func RemoveBalancer(ctx context.Context, o Options) error {
	return locked(ctx, &o, func(st *state) error {
		if err := removeBalancer(ctx, o, st); err != nil {
			return err
		}
		return saveState(o.StateDir, st)
	})
}

// BalancerOf returns the lab's balancer twin, nil when it has none, and
// whether it runs.
func BalancerOf(o Options) (*Balancer, bool, error) {
	if err := o.defaults(); err != nil {
		return nil, false, err
	}
	st, err := loadState(o.StateDir)
	if err != nil || st.Balancer == nil {
		return nil, false, err
	}
	return st.Balancer, twinAlive(st.Balancer.PID, balancerDir(o)), nil
}
