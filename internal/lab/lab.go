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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Options configure a lab.
type Options struct {
	// Name of the lab; several labs may run at once. Default "lab".
	Name string
	// StateDir holds the machines' trees, logs and state.json.
	// Default /var/lib/hoist/lab/NAME.
	StateDir string
	// CacheDir holds the cached base root trees. Default /var/cache/hoist/lab.
	CacheDir string
	// Suite is the Debian release. Default bookworm.
	Suite string
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
}

// Host is one lab machine.
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

func (o *Options) defaults() error {
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
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.Mirror == "" {
		o.Mirror = "http://deb.debian.org/debian"
	}
	if o.Subnet == "" {
		o.Subnet = DefaultSubnet(o.Name)
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

// DefaultSubnet derives a /24 in 10.213.0.0/16 from the lab name, so that
// labs with different names do not collide.
func DefaultSubnet(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("10.213.%d.0/24", 1+h.Sum32()%250)
}

// addr returns the address of host i (0-based) and of the bridge.
func hostAddr(subnet string, i int) (string, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 {
		return "", fmt.Errorf("lab subnet %q must be an IPv4 /24", subnet)
	}
	b := p.Masked().Addr().As4()
	if i < 0 {
		b[3] = 1
	} else {
		b[3] = byte(11 + i)
	}
	return netip.AddrFrom4(b).String(), nil
}

// Interface and machine names: Linux limits interface names to 15 bytes.
func bridgeName(lab string) string         { return "hlb-" + lab }
func vethName(lab string, i int) string    { return "hv" + strconv.Itoa(i) + "-" + lab }
func machineName(lab string, i int) string { return "hoist-" + lab + "-" + strconv.Itoa(i) }

// Preflight checks that this machine can run a lab.
func Preflight() error {
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

// Up boots the lab with n hosts: hosts already running are kept, stopped
// ones are booted again with their disks as they were, and missing ones
// are made. It returns when every host answers SSH.
func Up(ctx context.Context, o Options, n int) ([]Host, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	if st.Subnet != "" && st.Subnet != o.Subnet {
		o.Subnet = st.Subnet
	}
	st.Name, st.Subnet = o.Name, o.Subnet
	base, err := ensureBase(ctx, o)
	if err != nil {
		return nil, err
	}
	pub, err := ensureKey(o.KeyPath)
	if err != nil {
		return nil, err
	}
	if err := ensureBridge(ctx, o); err != nil {
		return nil, err
	}
	for i := 0; i < max(n, len(st.Hosts)); i++ {
		if i < len(st.Hosts) && alive(st.Hosts[i].PID) {
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
		if err := waitNetnsEmpty(m.Name, 15*time.Second); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "booting %s at %s\n", m.Name, m.Addr)
		if err := m.boot(ctx, o, base, pub); err != nil {
			saveState(o.StateDir, st)
			return nil, err
		}
		st.Hosts[i] = m.Host
		if err := saveState(o.StateDir, st); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, h := range st.Hosts {
		if err := waitSSH(ctx, h.Addr, deadline); err != nil {
			return nil, usererr.Wrap(err, "lab host %s did not answer SSH", h.Name).
				WithHint("its console log is %s:\n%s", logPath(o, h.Name), tail(logPath(o, h.Name), 15))
		}
	}
	return st.Hosts, nil
}

// Status reports the lab's hosts.
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
		hs := HostStatus{Host: h, Running: alive(h.PID)}
		if hs.Running {
			hs.SSH = sshBanner(ctx, h.Addr, time.Second) == nil
		}
		out = append(out, hs)
	}
	return out, nil
}

// Down stops the lab's hosts and removes what the lab made.
func Down(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return err
	}
	var errs []error
	for i, h := range st.Hosts {
		m := &machine{Host: h, index: i}
		fmt.Fprintf(o.Log, "stopping %s\n", h.Name)
		if err := m.destroy(ctx, o); err != nil {
			errs = append(errs, err)
		}
		if err := forgetKnownHost(o.KnownHostsPath, h.Addr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ipCmd(ctx, "link", "del", bridgeName(o.Name)); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(o.StateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func logPath(o Options, name string) string { return filepath.Join(o.StateDir, name+".log") }

func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
