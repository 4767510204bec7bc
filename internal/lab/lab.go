// Package lab boots local Linux hosts to deploy to: Debian machines run by
// systemd-nspawn, each with systemd as PID 1 and OpenSSH, each in its own
// network namespace with an address on a private bridge. They are real
// hosts for hoist's purposes, made in seconds from a cached root tree.
package lab

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/platform"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Options configure a lab.
type Options struct {
	// Name of the lab; several labs may run at once. Default "lab".
	Name string
	// StateDir holds the machines' trees, logs and state.json.
	// Default /var/lib/hoist/lab/NAME.
	StateDir string
	// CacheDir holds the cached base root trees, shared by all labs.
	// Default /var/cache/hoist/lab.
	CacheDir string
	// Suite is the Debian release. Default bookworm.
	Suite string
	// Arch is the hosts' architecture, as GOARCH names it (amd64, arm64).
	// Default: this machine's, or what the lab was made with. Another
	// runs under qemu-user emulation (qemu-user-static, binfmt-support):
	// slow, but real arm64 Debian hosts on an amd64 machine.
	Arch string
	// Mirror is the Debian mirror debootstrap uses.
	Mirror string
	// Subnet is an IPv4 /24; default derived from Name within 10.213.0.0/16.
	Subnet string
	// KeyPath is the private key that logs in as root; made if missing.
	KeyPath string
	// KnownHostsPath receives each host's key.
	KnownHostsPath string
	// Log receives progress for people.
	Log io.Writer
	// UserData, when set, boots new hosts from the bare cloud image
	// (EnsureCloudImage) instead of the lab's own tree: no lab key and no
	// host key are put in, and cloud-init configures each host on its
	// first boot from a NoCloud seed holding UserData's answer. Their host
	// keys are then for the caller to record.
	UserData func(Host) ([]byte, error)
	// Labels are kept in the lab's state, so that whoever made the lab
	// knows it again (LabelsOf); Up refuses a lab whose labels differ.
	Labels map[string]string
	// Packages are Debian packages the hosts can install with apt-get,
	// from a local repository the lab downloads once (apt.go): hosts
	// cannot reach a mirror. Kept in the lab's state; nil keeps the
	// state's list.
	Packages []string
	// Firewall, when set, is what the hosts accept from outside, applied
	// with nftables in each host's network namespace (firewall.go), as a
	// cloud's security group would. Kept in the lab's state; nil keeps
	// the state's.
	Firewall *Firewall
	// Balancer, when set, puts the lab's balancer twin in front of the
	// hosts (balancer.go), as an ALB. Kept in the lab's state; nil keeps
	// the state's (RemoveBalancer removes it).
	Balancer *BalancerOptions

	// forceCopy makes hosts' trees copies even where overlayfs works, so
	// tests can exercise the fallback.
	forceCopy bool
}

// Host is one lab machine. PID is its systemd-nspawn process.
type Host struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

// HostStatus is a host and whether it runs and answers SSH.
type HostStatus struct {
	Host
	Running bool
	SSH     bool
}

// Time limits. Boot is a few seconds here; the limits leave room for a
// loaded machine.
const (
	bootTimeout = 90 * time.Second // all hosts' SSH, from the last boot
	lockTimeout = 2 * time.Minute  // another hoist working on the same lab
)

func (o *Options) defaults() error {
	if err := platform.Check(platform.Lab); err != nil {
		return err
	}
	if o.Name == "" {
		o.Name = "lab"
	}
	if !validName(o.Name) {
		return usererr.New("lab name %q is not valid: use up to 8 lowercase letters and digits", o.Name)
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join("/var/lib/hoist/lab", o.Name)
	}
	if o.CacheDir == "" {
		o.CacheDir = "/var/cache/hoist/lab"
	}
	// Mount points are matched by path in /proc/self/mountinfo.
	for _, p := range []*string{&o.StateDir, &o.CacheDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		*p = abs
	}
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if !validSuite(o.Suite) {
		return usererr.New("Debian suite %q is not valid", o.Suite)
	}
	if o.Mirror == "" {
		o.Mirror = "http://deb.debian.org/debian"
	}
	if o.Subnet == "" {
		o.Subnet = DefaultSubnet(o.Name)
	}
	if _, err := hostAddr(o.Subnet, 0); err != nil {
		return usererr.Wrap(err, "lab %s", o.Name)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// validSuite accepts Debian suite names (bookworm, trixie, stable...),
// which become a path under CacheDir.
func validSuite(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// DefaultSubnet derives a /24 in 10.213.0.0/16 from the lab name, so that
// labs with different names do not collide (Up refuses when they do).
func DefaultSubnet(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("10.213.%d.0/24", 1+h.Sum32()%250)
}

// hostAddr returns the address of host i (0-based), or of the bridge for
// i < 0. Host addresses run from .11 up.
func hostAddr(subnet string, i int) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 {
		return "", fmt.Errorf("lab subnet %q must be an IPv4 /24", subnet)
	}
	if i > 200 {
		return "", fmt.Errorf("lab subnet %s has no room for host %d", subnet, i)
	}
	b := p.Masked().Addr().As4()
	if i < 0 {
		b[3] = 1
	} else {
		b[3] = byte(11 + i)
	}
	return netip.AddrFrom4(b).String(), nil
}

// Interface and machine names: Linux limits interface names to 15 bytes,
// which is why lab names have at most 8.
func bridgeName(lab string) string         { return "hlb-" + lab }
func vethName(lab string, i int) string    { return "hv" + strconv.Itoa(i) + "-" + lab }
func machinePrefix(lab string) string      { return "hoist-" + lab + "-" }
func machineName(lab string, i int) string { return machinePrefix(lab) + strconv.Itoa(i) }

// Preflight checks that this machine can run a lab.
func Preflight() error {
	if err := platform.Check(platform.Lab); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return usererr.New("the lab needs root: it boots machines and creates network namespaces").
			WithHint("run hoist lab as root, for example with sudo")
	}
	var missing []string
	for _, t := range []struct{ bin, pkg string }{
		{"debootstrap", "debootstrap"}, {"systemd-nspawn", "systemd-container"}, {"ip", "iproute2"},
	} {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) > 0 {
		return usererr.New("the lab needs %s, which this machine lacks", strings.Join(missing, ", ")).
			WithHint("install them: apt-get install %s", strings.Join(missing, " "))
	}
	return nil
}

// Up boots the lab with at least n hosts: hosts already running are kept,
// stopped ones are booted again with their disks as they were, and missing
// ones are made. It records every host's key in KnownHostsPath and returns
// when every host answers SSH.
func Up(ctx context.Context, o Options, n int) ([]Host, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("lab up: %d hosts", n)
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	l, err := filelock.Acquire(ctx, lockPath(o), lockTimeout)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	if st.Subnet != "" && st.Subnet != o.Subnet {
		fmt.Fprintf(o.Log, "lab %s keeps its subnet %s\n", o.Name, st.Subnet)
		o.Subnet = st.Subnet
	}
	if o.Labels != nil && len(st.Hosts) > 0 && !maps.Equal(st.Labels, o.Labels) {
		return nil, usererr.New("lab %s holds hosts made for %v, not %v", o.Name, st.Labels, o.Labels).
			WithHint("`hoist lab down --name %s` removes it", o.Name)
	}
	if err := o.pickArch(st); err != nil {
		return nil, err
	}
	st.Name, st.Subnet, st.Labels, st.Arch = o.Name, o.Subnet, o.Labels, o.Arch
	if o.Packages != nil {
		st.Packages = o.Packages
	}
	if o.Firewall != nil {
		st.Firewall = o.Firewall
	}
	if err := needNft(st); err != nil {
		return nil, err
	}
	if err := checkSubnetFree(o); err != nil {
		return nil, err
	}
	base, pub, err := baseAndKey(ctx, o)
	if err != nil {
		return nil, err
	}
	repo := ""
	if len(st.Packages) > 0 {
		if repo, err = ensureAptRepo(ctx, o, base, st.Packages); err != nil {
			return nil, err
		}
	}
	if err := ensureBridge(ctx, o); err != nil {
		return nil, err
	}
	if err := raiseInotifyLimit(o); err != nil {
		return nil, err
	}
	for i := 0; i < max(n, len(st.Hosts)); i++ {
		if i < len(st.Hosts) && alive(st.Hosts[i].PID, st.Hosts[i].Name) {
			continue
		}
		var m *machine
		if i < len(st.Hosts) {
			m = &machine{Host: st.Hosts[i]}
		} else {
			addr, err := hostAddr(o.Subnet, i)
			if err != nil {
				return nil, err
			}
			m = &machine{Host: Host{Name: machineName(o.Name, i), Addr: addr}}
			st.Hosts = append(st.Hosts, m.Host)
		}
		m.index = i
		// After a power cut the kernel may still be tearing down the old
		// machine's processes, which hold the namespace.
		if err := waitNetnsEmpty(m.Name, 15*time.Second); err != nil {
			return nil, err
		}
		// The firewall is up before the host boots, as a security group
		// is there before the instance.
		err := m.network(ctx, o)
		if err == nil {
			err = firewallHost(ctx, o, st, m.Name, max(n, len(st.Hosts)))
		}
		if err == nil {
			fmt.Fprintf(o.Log, "booting %s at %s\n", m.Name, m.Addr)
			err = m.boot(ctx, o, base, pub, repo)
		}
		st.Hosts[i] = m.Host
		// Saved even on failure: Down must find what was made.
		if serr := saveState(o.StateDir, st); err == nil {
			err = serr
		}
		if err != nil {
			return nil, err
		}
	}
	// The rules name every host: hosts that ran already learn of new ones.
	for _, h := range st.Hosts {
		if err := firewallHost(ctx, o, st, h.Name, len(st.Hosts)); err != nil {
			return nil, err
		}
	}
	if bo := o.Balancer; bo != nil || st.Balancer != nil {
		if bo == nil {
			bo = &st.Balancer.Options
		}
		if err := ensureBalancer(ctx, o, st, *bo); err != nil {
			return nil, err
		}
	}
	if err := recordHostKeys(o, st); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(bootTimeout)
	for _, h := range st.Hosts {
		if err := waitSSH(ctx, h.Addr, deadline); err != nil {
			return nil, usererr.Wrap(err, "lab host %s (%s) did not answer SSH within %s", h.Name, h.Addr, bootTimeout).
				WithHint("the end of its console log %s:\n%s", logPath(o, h.Name), tail(logPath(o, h.Name), 15))
		}
	}
	return st.Hosts, nil
}

// inotifyInstances is what a dozen lab hosts need, with a few labs at
// once: each host's systemd, journald, udev and logind take inotify
// instances from the one per-user limit they share with this machine
// (128 by default), and a host that gets none fails to boot.
const inotifyInstances = 1024

const inotifyLimitPath = "/proc/sys/fs/inotify/max_user_instances"

// raiseInotifyLimit raises the limit to inotifyInstances when it is lower.
func raiseInotifyLimit(o Options) error {
	b, err := os.ReadFile(inotifyLimitPath)
	if err != nil {
		return nil // not Linux's procfs as we know it: leave it be
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n >= inotifyInstances {
		return nil
	}
	fmt.Fprintf(o.Log, "raising fs.inotify.max_user_instances to %d for the lab's hosts\n", inotifyInstances)
	if err := os.WriteFile(inotifyLimitPath, []byte(strconv.Itoa(inotifyInstances)), 0o644); err != nil {
		return fmt.Errorf("raise fs.inotify.max_user_instances: %w", err)
	}
	return nil
}

// baseAndKey returns the tree new hosts are made from and the public key
// that logs in to them: the lab's tree and key, or the bare cloud image
// and no key.
func baseAndKey(ctx context.Context, o Options) (string, string, error) {
	if o.UserData != nil {
		img, err := EnsureCloudImage(ctx, o)
		return img, "", err
	}
	base, err := ensureBase(ctx, o)
	if err != nil {
		return "", "", err
	}
	pub, err := transport.EnsureKey(o.KeyPath, "hoist-lab")
	return base, pub, err
}

// recordHostKeys writes every host's key to KnownHostsPath, every time,
// so that a known_hosts file that lost them, or a new KnownHostsPath, is
// brought up to date. Hosts from the cloud image have the keys their user
// data gave, which the caller knows and records.
func recordHostKeys(o Options, st *state) error {
	if o.UserData != nil {
		return nil
	}
	keys := map[string]string{}
	for i, h := range st.Hosts {
		k, err := (&machine{Host: h, index: i}).hostKey(o)
		if err != nil {
			return err
		}
		keys[h.Addr] = k
	}
	return transport.SetKnownHosts(o.KnownHostsPath, keys)
}

// LabelsOf returns the labels the lab was made with, and whether it
// exists (has hosts).
func LabelsOf(o Options) (map[string]string, bool, error) {
	if err := o.defaults(); err != nil {
		return nil, false, err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, false, err
	}
	return st.Labels, len(st.Hosts) > 0, nil
}

// locked runs fn with the lab's state, holding the lab's lock; o gets
// its defaults first.
func locked(ctx context.Context, o *Options, fn func(st *state) error) error {
	if err := o.defaults(); err != nil {
		return err
	}
	l, err := filelock.Acquire(ctx, lockPath(*o), lockTimeout)
	if err != nil {
		return err
	}
	defer l.Release()
	st, err := loadState(o.StateDir)
	if err != nil {
		return err
	}
	return fn(st)
}

// Trim stops and removes the lab's hosts past the first n, and what
// they used (tree, namespace, veth, known_hosts lines).
func Trim(ctx context.Context, o Options, n int) error {
	return locked(ctx, &o, func(st *state) error { return trim(ctx, o, st, n) })
}

func trim(ctx context.Context, o Options, st *state, n int) error {
	forget := map[string]string{}
	for len(st.Hosts) > n {
		i := len(st.Hosts) - 1
		h := st.Hosts[i]
		fmt.Fprintf(o.Log, "removing %s\n", h.Name)
		if err := (&machine{Host: h, index: i}).destroy(ctx, o); err != nil {
			return err
		}
		forget[h.Addr] = ""
		st.Hosts = st.Hosts[:i]
		if err := saveState(o.StateDir, st); err != nil {
			return err
		}
	}
	return transport.SetKnownHosts(o.KnownHostsPath, forget)
}

// Status reports the lab's hosts: running means the recorded nspawn
// process lives; SSH means port 22 greets with an SSH banner within 1s.
func Status(ctx context.Context, o Options) ([]HostStatus, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	out := make([]HostStatus, 0, len(st.Hosts))
	for _, h := range st.Hosts {
		hs := HostStatus{Host: h, Running: alive(h.PID, h.Name)}
		if hs.Running {
			hs.SSH = sshBanner(ctx, h.Addr, time.Second) == nil
		}
		out = append(out, hs)
	}
	return out, nil
}

// Down stops the lab's hosts and removes what the lab made: machines,
// mounts, namespaces, veths, the bridge, the state directory and the
// hosts' known_hosts lines. It kills only the PIDs recorded in the state.
func Down(ctx context.Context, o Options) error {
	return locked(ctx, &o, func(st *state) error { return down(ctx, o, st) })
}

func down(ctx context.Context, o Options, st *state) error {
	var errs []error
	forget := map[string]string{}
	stuck := false
	for i, h := range st.Hosts {
		m := &machine{Host: h, index: i}
		fmt.Fprintf(o.Log, "stopping %s\n", h.Name)
		if err := m.destroy(ctx, o); err != nil {
			errs = append(errs, err)
			stuck = true
		}
		forget[h.Addr] = ""
	}
	if err := transport.SetKnownHosts(o.KnownHostsPath, forget); err != nil {
		errs = append(errs, err)
	}
	if err := removeBalancer(ctx, o, st); err != nil {
		errs = append(errs, err)
		stuck = true
	}
	// Namespaces the state no longer names (a lost or older state file).
	for _, ns := range leftoverNetns(o.Name) {
		ipCmd(ctx, "netns", "del", ns)
	}
	ipCmd(ctx, "link", "del", ifbName(o.Name)) // ShapeUplink's, if it made one
	if err := ipCmd(ctx, "link", "del", bridgeName(o.Name)); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err)
	}
	// A machine that would not stop keeps its tree and state, so that a
	// later Down can try again.
	if !stuck {
		if err := os.RemoveAll(o.StateDir); err != nil {
			errs = append(errs, err)
		}
		os.Remove(lockPath(o))
	}
	return errors.Join(errs...)
}

// lockPath is beside the state directory, so Down can remove the whole
// directory while holding the lock.
func lockPath(o Options) string {
	return filepath.Join(filepath.Dir(o.StateDir), "."+filepath.Base(o.StateDir)+".lock")
}

func logPath(o Options, name string) string { return filepath.Join(o.StateDir, name+".log") }

// tail returns the last n lines of a console log without its colour codes.
func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(no log)"
	}
	return lastLines(stripANSI(string(b)), n)
}

// stripANSI drops CSI escape sequences (ESC [ ... final byte).
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
