package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestNamesFitInterfaceLimit(t *testing.T) {
	long := "abcdefgh" // the longest valid lab name
	for _, n := range []string{bridgeName(long), vethName(long, 49) + "p"} {
		if len(n) > 15 {
			t.Errorf("interface name %q is %d bytes, Linux allows 15", n, len(n))
		}
	}
	tests := map[string]bool{"lab": true, "e2e": true, long: true, long + "m": false, "Lab": false, "a-b": false, "": false}
	for name, want := range tests {
		if validName(name) != want {
			t.Errorf("validName(%q) = %v", name, !want)
		}
	}
}

func TestSubnetsAndAddresses(t *testing.T) {
	a, b := DefaultSubnet("lab"), DefaultSubnet("e2e")
	if a == b {
		t.Errorf("labs lab and e2e share subnet %s", a)
	}
	if a != DefaultSubnet("lab") || !strings.HasPrefix(a, "10.213.") {
		t.Errorf("DefaultSubnet(lab) = %s", a)
	}
	got := []string{}
	for _, i := range []int{-1, 0, 1} {
		s, err := hostAddr("10.213.7.0/24", i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if diff := cmp.Diff([]string{"10.213.7.1", "10.213.7.11", "10.213.7.12"}, got); diff != "" {
		t.Error(diff)
	}
	if _, err := hostAddr("10.0.0.0/16", 0); err == nil {
		t.Error("a /16 was accepted")
	}
}

func TestKnownHostsReplaceAndForget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(p, []byte("other ssh-ed25519 AAAA1\n10.0.0.5 ssh-ed25519 OLD\n[10.0.0.5]:22 ssh-rsa OLD2\n"), 0o600)
	if err := recordKnownHost(p, "10.0.0.5", "ssh-ed25519 NEW"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if got, want := string(b), "other ssh-ed25519 AAAA1\n10.0.0.5 ssh-ed25519 NEW\n"; got != want {
		t.Errorf("after record:\n%s\nwant:\n%s", got, want)
	}
	if err := forgetKnownHost(p, "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	if got := string(b); got != "other ssh-ed25519 AAAA1\n" {
		t.Errorf("after forget: %q", got)
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := loadState(dir)
	if err != nil || len(st.Hosts) != 0 {
		t.Fatalf("empty state: %+v, %v", st, err)
	}
	want := &state{Name: "x", Subnet: "10.213.9.0/24", Hosts: []Host{{Name: "hoist-x-0", Addr: "10.213.9.11", PID: 42}}}
	if err := saveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestKeyIsMadeOnceAndParses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lab", "id_ed25519")
	pub1, err := ensureKey(p)
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := ensureKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Fields(pub1)[1] != strings.Fields(pub2)[1] {
		t.Error("ensureKey made a second key")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
}

// TestLabUpDown boots two real hosts, logs in to each with the lab key,
// checking the host key it recorded, then removes everything.
func TestLabUpDown(t *testing.T) {
	if err := Preflight(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab cannot run under CI: %v", err)
		}
		t.Skipf("lab cannot run here: %v", err)
	}
	dir := t.TempDir()
	o := Options{
		Name:           fmt.Sprintf("t%d", os.Getpid()%100000),
		StateDir:       filepath.Join(dir, "state"),
		KeyPath:        filepath.Join(dir, "id_ed25519"),
		KnownHostsPath: filepath.Join(dir, "known_hosts"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t.Cleanup(func() { Down(context.Background(), o) })
	hosts, err := Up(ctx, o, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Addr == hosts[1].Addr {
		t.Fatalf("Up returned %+v", hosts)
	}
	start := time.Now()
	again, err := Up(ctx, o, 2)
	if err != nil || !cmp.Equal(hosts, again) {
		t.Fatalf("second Up: %+v, %v", again, err)
	}
	t.Logf("second Up of a running lab took %s", time.Since(start))

	for _, h := range hosts {
		out := runSSH(t, o, h.Addr, "hostname; systemctl is-active multi-user.target")
		if want := h.Name + "\nactive\n"; out != want {
			t.Errorf("%s answered %q, want %q", h.Addr, out, want)
		}
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
	if _, err := Up(ctx, o, 2); err != nil {
		t.Fatal(err)
	}
	if out := runSSH(t, o, hosts[0].Addr, "cat /root/marker"); out != "kept\n" {
		t.Errorf("after the power cut the disk holds %q", out)
	}

	if err := Down(ctx, o); err != nil {
		t.Fatal(err)
	}
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
	}
	if b, _ := os.ReadFile(o.KnownHostsPath); len(bytes.TrimSpace(b)) != 0 {
		t.Errorf("known_hosts still lists: %s", b)
	}
}

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
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("ssh %s %q: %v", addr, cmd, err)
	}
	return string(out)
}
