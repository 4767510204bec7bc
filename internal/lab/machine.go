package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/transport"
)

type machine struct {
	Host
	index int
}

func (m *machine) dir(o Options) string  { return filepath.Join(o.StateDir, m.Name) }
func (m *machine) root(o Options) string { return filepath.Join(m.dir(o), "root") }

// boot prepares the machine's tree and network and starts it, with the
// local apt repository repo, if any, as its apt source. A machine that
// ran before keeps its disk, as a rebooted host would.
func (m *machine) boot(ctx context.Context, o Options, base, pub, repo string) error {
	dir, root := m.dir(o), m.root(o)
	if err := prepareRoot(ctx, o, base, dir); err != nil {
		return err
	}
	if !m.prepared(o) {
		give := func() error { return m.personalize(root, pub) }
		if o.UserData != nil {
			give = func() error { return m.seed(root, o) }
		}
		if err := give(); err != nil {
			return err
		}
		if err := touch(filepath.Join(dir, preparedMarker)); err != nil {
			return err
		}
	}
	if err := m.network(ctx, o); err != nil {
		return err
	}
	logf, err := os.OpenFile(logPath(o, m.Name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("boot %s: %w", m.Name, err)
	}
	defer logf.Close()
	args := []string{"--quiet", "-D", root, "-b", "-M", m.Name,
		"--register=no", "--keep-unit", "--network-namespace-path=/run/netns/" + m.Name}
	if repo != "" {
		if err := useAptRepo(root); err != nil {
			return err
		}
		args = append(args, "--bind-ro="+repo+":"+AptRepoMount)
	}
	cmd := exec.Command("systemd-nspawn", args...)
	cmd.Env = os.Environ()
	cgroup, err := openMachineCgroup(m.Name)
	if err != nil {
		return fmt.Errorf("boot %s: %w", m.Name, err)
	}
	if cgroup != nil {
		defer cgroup.Close()
		cmd.SysProcAttr = inCgroup(cgroup)
	}
	if cgroup2Root() != "" {
		// A real Debian 12 host runs the unified (v2) hierarchy. Without
		// this, on a hybrid host nspawn gives the guest the v1 layout,
		// with warnings; with it the guest boots cleanly on cgroup v2.
		cmd.Env = append(cmd.Env, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	}
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startDetached(cmd); err != nil {
		return fmt.Errorf("boot %s: %w", m.Name, err)
	}
	m.PID = cmd.Process.Pid
	// Reap it if it dies while we still run, so alive() sees it gone.
	go cmd.Wait()
	return nil
}

// prepared reports whether the machine's tree already has its identity.
// Trees made before the marker existed are known by their own host key
// in the overlay's upper layer.
func (m *machine) prepared(o Options) bool {
	return exists(filepath.Join(m.dir(o), preparedMarker)) ||
		exists(filepath.Join(m.dir(o), "upper/etc/ssh/ssh_host_ed25519_key"))
}

// hostKey returns the machine's SSH host public key, "ssh-ed25519 AAAA...".
func (m *machine) hostKey(o Options) (string, error) {
	b, err := os.ReadFile(filepath.Join(m.root(o), "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return "", fmt.Errorf("host key of %s: %w", m.Name, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", fmt.Errorf("host key of %s: malformed", m.Name)
	}
	return f[0] + " " + f[1], nil
}

// cgroup2Root is where the host's cgroup v2 hierarchy is mounted, alone
// (unified) or beside the v1 controllers (hybrid); "" when it has none.
func cgroup2Root() string {
	const cgroup2Magic = 0x63677270
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var fs syscall.Statfs_t
		if syscall.Statfs(p, &fs) == nil && fs.Type == cgroup2Magic {
			return p
		}
	}
	return ""
}

// machineCgroup is the cgroup a machine runs in. Each needs its own:
// nspawn puts the guest's systemd in a "payload" cgroup beside itself,
// so machines started from one cgroup share it, and a unit of one name
// on two machines (one release on two hosts) shares a cgroup. systemd
// then cannot kill a unit's processes (EIO, with another machine's in
// the group), and what a stopped unit started lives on.
func machineCgroup(name string) string {
	root := cgroup2Root()
	if root == "" {
		return ""
	}
	return filepath.Join(root, "hoist-lab", name)
}

// openMachineCgroup makes the machine's cgroup and opens it, for nspawn
// to start in; nil when the host has no cgroup v2.
func openMachineCgroup(name string) (*os.File, error) {
	dir := machineCgroup(name)
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make cgroup: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return f, nil
}

// removeCgroup removes the cgroup dir and those below it, deepest
// first, once no process is left in them.
func removeCgroup(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}

// personalize gives a fresh tree its identity: hostname, machine id, an
// SSH host key of its own, and the lab key for root.
func (m *machine) personalize(root, pub string) error {
	hostKey, hostPub, err := transport.NewHostKey()
	if err != nil {
		return err
	}
	id, err := randomHex(16)
	if err != nil {
		return err
	}
	// The base's host keys are the same in every copy; only ours may stay.
	olds, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, p := range olds {
		os.Remove(p)
	}
	authorized := pub
	for _, p := range userPublicKeys() {
		authorized += p
	}
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{"etc/hostname", m.Name + "\n", 0o644},
		// As Debian's installer writes it: the host's own name resolves,
		// which Erlang distribution (sname) needs.
		{"etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t" + m.Name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644},
		{"etc/machine-id", id + "\n", 0o444},
		{"etc/ssh/ssh_host_ed25519_key", hostKey, 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", hostPub + "\n", 0o644},
		{"etc/ssh/sshd_config.d/hoist-lab.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n", 0o644},
		{"root/.ssh/authorized_keys", authorized, 0o600},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("prepare %s: %w", m.Name, err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("prepare %s: %w", m.Name, err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("prepare %s: %w", m.Name, err)
		}
	}
	return nil
}

// destroy stops the machine and removes its tree and namespace. A tree
// whose machine would not die, or that stays mounted, is left alone.
func (m *machine) destroy(ctx context.Context, o Options) error {
	if !stop(m.PID, m.Name) {
		return fmt.Errorf("stop %s: pid %d still runs after SIGKILL", m.Name, m.PID)
	}
	var errs []error
	if err := ipCmd(ctx, "netns", "del", m.Name); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err)
	}
	// Deleting the namespace frees its end of the pair only once the
	// kernel reaps the namespace; delete the pair from this end now.
	ipCmd(ctx, "link", "del", vethName(o.Name, m.index))
	if err := umount(m.root(o)); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := os.RemoveAll(m.dir(o)); err != nil {
		errs = append(errs, err)
	}
	os.Remove(logPath(o, m.Name))
	if dir := machineCgroup(m.Name); dir != "" {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stop asks the machine to power off (SIGTERM to nspawn), then kills its
// init, which takes its whole PID namespace with it, and nspawn. It
// reports whether the process is gone.
func stop(pid int, name string) bool {
	if !alive(pid, name) {
		return true
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, name, 20*time.Second) {
		return true
	}
	for _, child := range children(pid) {
		syscall.Kill(child, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return waitGone(pid, name, 5*time.Second)
}

// PowerCut kills a lab host at once, as a power cut would: nothing inside
// gets to shut down. Up boots it again with its disk as it was.
func PowerCut(o Options, name string) error {
	if err := o.defaults(); err != nil {
		return err
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return err
	}
	for _, h := range st.Hosts {
		if h.Name == name || h.Addr == name {
			if !alive(h.PID, h.Name) {
				return fmt.Errorf("lab host %s is not running", name)
			}
			for _, child := range children(h.PID) {
				syscall.Kill(child, syscall.SIGKILL)
			}
			syscall.Kill(h.PID, syscall.SIGKILL)
			if !waitGone(h.PID, h.Name, 10*time.Second) {
				return fmt.Errorf("lab host %s did not die", name)
			}
			// The kernel tears the PID namespace down after init dies; wait
			// until nothing runs in the host's network namespace any more.
			return waitNetnsEmpty(h.Name, 10*time.Second)
		}
	}
	return fmt.Errorf("no lab host %s", name)
}

func waitGone(pid int, name string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(pid, name) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return !alive(pid, name)
}

// alive reports whether pid is the running systemd-nspawn of machine
// name: not a zombie, not a recycled pid of another program or machine.
func alive(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !isNspawnOf(string(cmdline), name) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// isNspawnOf reports whether a NUL-separated command line is
// systemd-nspawn booting machine name (as boot starts it).
func isNspawnOf(cmdline, name string) bool {
	args := strings.Split(strings.TrimRight(cmdline, "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "-M" && args[i+1] == name {
			return true
		}
	}
	return false
}

func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func waitNetnsEmpty(ns string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil || len(strings.TrimSpace(string(out))) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still run in %s: %s", ns, strings.Fields(string(out)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDetached starts cmd in a session of its own, so that it outlives
// this process, with only the descriptors cmd names. Go opens its own
// files close-on-exec, but not what this process inherited: a machine
// started under `flock` would hold the lock for as long as it runs.
func startDetached(cmd *exec.Cmd) error {
	if err := closeInheritedOnExec(); err != nil {
		return err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	return cmd.Start()
}

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// Those Go opened are already; marking them again is harmless.
func closeInheritedOnExec() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}
