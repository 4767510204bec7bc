//go:build lab

package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// needLab skips the test where a lab cannot run, and fails it under CI,
// where it must.
func needLab(t *testing.T) {
	t.Helper()
	if err := Preflight(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab cannot run under CI: %v", err)
		}
		t.Skipf("lab cannot run here: %v", err)
	}
}

// TestLabUpDown boots two real hosts, logs in to each with the lab key,
// checking the host key it recorded, runs what hoist runs on hosts, then
// removes everything.
func TestLabUpDown(t *testing.T) {
	needLab(t)
	dir := t.TempDir()
	o := Options{
		Name:           fmt.Sprintf("t%d", os.Getpid()%100000),
		StateDir:       filepath.Join(dir, "state"),
		KeyPath:        filepath.Join(dir, "id_ed25519"),
		KnownHostsPath: filepath.Join(dir, "known_hosts"),
		Log:            testLog{t},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		Down(ctx, o)
	})
	// As `flock FILE hoist lab up` would: a descriptor the machines must
	// not keep, or the lock lasts as long as they run.
	held := filepath.Join(dir, "held.lock")
	heldFD, err := syscall.Open(held, syscall.O_RDWR|syscall.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(heldFD)
	start := time.Now()
	hosts, err := Up(ctx, o, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Up of 2 new hosts took %s", time.Since(start).Round(time.Millisecond))
	for _, h := range hosts {
		if fds := openFiles(t, h.PID); slices.Contains(fds, held) {
			t.Errorf("%s's systemd-nspawn (pid %d) holds %s: %v", h.Name, h.PID, held, fds)
		}
	}
	if len(hosts) != 2 || hosts[0].Addr == hosts[1].Addr {
		t.Fatalf("Up returned %+v", hosts)
	}
	start = time.Now()
	again, err := Up(ctx, o, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(hosts, again); diff != "" {
		t.Fatalf("Up of a running lab changed its hosts (-before +after):\n%s", diff)
	}
	t.Logf("Up of the running lab took %s", time.Since(start).Round(time.Millisecond))

	for _, h := range hosts {
		out := runSSH(t, o, h.Addr, "hostname; timeout 60 systemctl is-system-running --wait; systemctl is-active multi-user.target")
		if want := h.Name + "\nrunning\nactive\n"; out != want {
			t.Errorf("%s answered %q, want %q", h.Addr, out, want)
		}
	}

	// What hoist does on a host: a system user, a hardened unit, its journal.
	out := runSSH(t, o, hosts[0].Addr, `set -e
useradd --system --no-create-home --shell /usr/sbin/nologin labapp
mkdir -p /srv/labapp && chown labapp /srv/labapp
cat >/etc/systemd/system/labapp.service <<'EOF'
[Service]
User=labapp
ExecStart=/bin/sh -c 'touch /srv/labapp/ok /tmp/private && ! touch /usr/x 2>/dev/null && echo hardened-ok && exec sleep 600'
ProtectSystem=strict
ReadWritePaths=/srv/labapp
PrivateTmp=yes
NoNewPrivileges=yes
ProtectHome=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictNamespaces=yes
SystemCallFilter=@system-service
EOF
systemctl daemon-reload
systemctl start labapp
for i in $(seq 50); do journalctl -u labapp -o cat | grep -q hardened-ok && break; sleep 0.2; done
systemctl is-active labapp
journalctl -u labapp -o cat | grep hardened-ok
test ! -e /tmp/private && echo private-tmp-ok
systemctl stop labapp`)
	if want := "active\nhardened-ok\nprivate-tmp-ok\n"; out != want {
		t.Errorf("hardened unit: got %q, want %q", out, want)
	}

	// A unit of one name on both hosts (one release on two hosts): each
	// host's systemd kills what its own started, a daemon too, and leaves
	// the other host's alone. Machines that shared a cgroup could not.
	const daemonUnit = `cat >/etc/systemd/system/twin.service <<'EOF'
[Service]
ExecStart=/bin/sh -c 'setsid sleep 601 & exec sleep 600'
EOF
systemctl daemon-reload && systemctl start twin && for i in $(seq 50); do pgrep -x -f "sleep 601" >/dev/null && break; sleep 0.2; done; pgrep -c -x -f "sleep 601"`
	for _, h := range hosts {
		if out := runSSH(t, o, h.Addr, daemonUnit); out != "1\n" {
			t.Fatalf("%s: the unit's daemon: %q", h.Addr, out)
		}
	}
	if out := runSSH(t, o, hosts[0].Addr, `systemctl stop twin; pgrep -c -x -f "sleep 601"; journalctl -u twin -o cat | grep -c "Failed to kill"; true`); out != "0\n0\n" {
		t.Errorf("after its unit stopped, its daemon count and systemd's failures to kill are %q, want 0 and 0", out)
	}
	if out := runSSH(t, o, hosts[1].Addr, `systemctl is-active twin; pgrep -c -x -f "sleep 601"; true`); out != "active\n1\n" {
		t.Errorf("the other host's unit of the same name: %q, want it active with its daemon", out)
	}

	st, err := Status(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Running || !s.SSH {
			t.Errorf("status %+v", s)
		}
	}

	// A power cut, then Up: the host boots again with its disk.
	runSSH(t, o, hosts[0].Addr, "echo kept > /root/marker; sync")
	if err := PowerCut(o, hosts[0].Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := Status(ctx, o); len(st) != 2 || st[0].Running || !st[1].Running {
		t.Errorf("status after the power cut: %+v", st)
	}
	start = time.Now()
	if _, err := Up(ctx, o, 2); err != nil {
		t.Fatal(err)
	}
	t.Logf("Up after a power cut took %s", time.Since(start).Round(time.Millisecond))
	if out := runSSH(t, o, hosts[0].Addr, "cat /root/marker"); out != "kept\n" {
		t.Errorf("after the power cut the disk holds %q", out)
	}

	start = time.Now()
	if err := Down(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Logf("Down took %s", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(o.StateDir); !os.IsNotExist(err) {
		t.Error("state dir left behind")
	}
	if err := exec.Command("ip", "link", "show", bridgeName(o.Name)).Run(); err == nil {
		t.Error("bridge left behind")
	}
	for i, h := range hosts {
		if _, err := os.Stat("/run/netns/" + h.Name); !os.IsNotExist(err) {
			t.Errorf("netns %s left behind", h.Name)
		}
		if err := exec.Command("ip", "link", "show", vethName(o.Name, i)).Run(); err == nil {
			t.Errorf("veth %s left behind", vethName(o.Name, i))
		}
		if alive(h.PID, h.Name) {
			t.Errorf("%s (pid %d) still runs", h.Name, h.PID)
		}
		if dir := machineCgroup(h.Name); dir != "" {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("cgroup %s left behind", dir)
			}
		}
	}
	if b, _ := os.ReadFile(o.KnownHostsPath); len(bytes.TrimSpace(b)) != 0 {
		t.Errorf("known_hosts still lists: %s", b)
	}
	if err := Down(ctx, o); err != nil {
		t.Errorf("a second Down: %v", err)
	}
}

// runSSH runs cmd as root on addr, trusting only the host key the lab
// recorded, and gives up after a minute.
func runSSH(t *testing.T, o Options, addr, cmd string) string {
	t.Helper()
	key, err := os.ReadFile(o.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(o.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh %s: %v", addr, err)
	}
	defer c.Close()
	timer := time.AfterFunc(time.Minute, func() { c.Close() })
	defer timer.Stop()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("ssh %s %q: %v\nstdout: %s\nstderr: %s", addr, cmd, err, out, stderr.Bytes())
	}
	return string(out)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// openFiles lists what pid's descriptors point at.
func openFiles(t *testing.T, pid int) []string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, target)
		}
	}
	return out
}
