//go:build lab

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/transport"
)

// TestProvisionLab takes an app from nothing to HTTPS on two hosts that
// hoist provisions on the lab from a bare image (no key, no hoist):
// plan, provision (real cloud-init runs hoist's user data), deploy with
// the proxy and tls: internal, a second provision that changes nothing,
// the first host key replaced and refused, then destroy with nothing
// left: machines, namespaces, links, state, known_hosts lines.
func TestProvisionLab(t *testing.T) {
	needRoot(t)
	const app, name = "prov", "prov.test"
	opPriv, opPub := operatorKeyFiles(t)
	a := newApp(t, app, 3400, nil, fmt.Sprintf("proxy:\n  hosts: [%s]\n  tls: internal\ninfra:\n  provider: lab\n  count: 2\n  public_key: %s\n", name, opPub))
	labName := cleanAppLab(t, app)

	// The plan: two hosts and their firewall to create, at no cost.
	var plan provision.Plan
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "plan", "--json")), &plan); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, c := range plan.Changes {
		if c.Action == provision.Create {
			kinds[c.Resource.Kind]++
		}
	}
	if kinds["lab host"] != 2 || kinds["firewall"] != 1 || len(plan.Changes) != 3 || plan.Cost.Total != 0 {
		t.Fatalf("plan of a new lab: %v to create of %d changes, cost %v; want 2 hosts and a firewall at $0", kinds, len(plan.Changes), plan.Cost.Total)
	}
	if out := mustHoist(t, a.dir, "plan"); strings.Count(out, "+ create") != 3 {
		t.Errorf("plan printed:\n%s", out)
	}

	targets := strings.Fields(mustHoistLong(t, a.dir, 10*time.Minute, "provision"))
	if len(targets) != 2 {
		t.Fatalf("provision printed %q, want two hosts", targets)
	}
	st := readProvisionState(t, app)
	addrs := make([]string, len(targets))
	for i, tg := range targets {
		user, addr, _ := strings.Cut(tg, "@")
		if user != "admin" {
			t.Errorf("host %s: login user %q, want admin (made by cloud-init)", tg, user)
		}
		addrs[i] = addr
		if !st.Hosts[i].KeyReplaced || st.Hosts[i].HostKey == "" {
			t.Errorf("host %s: key not replaced in the state: %+v", tg, st.Hosts[i])
		}
	}

	// deploy finds the hosts in what provision recorded; provision set them up.
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	roots := x509.NewCertPool()
	if pem := mustHoist(t, a.dir, "proxy", "ca"); !roots.AppendCertsFromPEM([]byte(pem)) {
		t.Fatalf("hoist proxy ca printed no certificate:\n%s", pem)
	}
	for _, addr := range addrs {
		resp, _ := getHTTPS(t, addr, name, roots)
		if got := strings.TrimSpace(resp.body); got != "hello from release "+id {
			t.Errorf("%s over HTTPS: %q", addr, got)
		}
	}

	// A second run changes nothing and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, stderr, err := hoist(ctx, a.dir, "provision")
	// Said once, with the lab's name for `hoist lab status`.
	if err != nil || strings.Count(stderr, "nothing changed") != 1 || strings.Count(stderr, "nothing to change") != 1 ||
		!strings.Contains(stderr, "lab "+labName) {
		t.Errorf("second provision: %v\n%s", err, stderr)
	}
	if again := readProvisionState(t, app); again.Hosts[0].HostKey != st.Hosts[0].HostKey {
		t.Errorf("second provision replaced the host key again")
	}

	// The key from the user data (readable through a cloud's instance
	// metadata) is refused; the replacement is the one hosts present.
	signer := loadSigner(t, opPriv)
	for i, addr := range addrs {
		first := firstHostKey(t, labName, st.Hosts[i].ID)
		if first == st.Hosts[i].HostKey {
			t.Fatalf("%s: the recorded key is still the one from the user data", addr)
		}
		if err := sshWithHostKey(addr, signer, first); err == nil || !strings.Contains(err.Error(), "host key mismatch") {
			t.Errorf("%s: connecting while expecting the user data's key: %v, want a host key mismatch", addr, err)
		}
		if err := sshWithHostKey(addr, signer, st.Hosts[i].HostKey); err != nil {
			t.Errorf("%s: connecting with the replacement key: %v", addr, err)
		}
		// hoist's own transport, given only the first key, refuses too.
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(addr+" "+first+"\n"), 0o600)
		_, err := transport.Dial(ctx, "admin@"+addr, transport.Options{KnownHostsFiles: []string{kh}, IdentityFiles: []string{opPriv}, SSHConfigFile: "none"})
		var hk *transport.HostKeyError
		if !errors.As(err, &hk) {
			t.Errorf("%s: hoist's transport with the first key: %v, want a HostKeyError", addr, err)
		}
	}

	// destroy asks for the app's name; a wrong one destroys nothing.
	if _, stderr, err := hoistIn(ctx, a.dir, "nope\n", "destroy"); err == nil || !strings.Contains(stderr, "nothing was changed") {
		t.Fatalf("destroy with a wrong name: %v\n%s", err, stderr)
	}
	if len(readProvisionState(t, app).Hosts) != 2 {
		t.Fatal("destroy with a wrong name removed hosts")
	}
	if _, stderr, err := hoistIn(ctx, a.dir, app+"\n", "destroy"); err != nil {
		t.Fatalf("destroy: %v\n%s", err, stderr)
	}
	assertLabGone(t, labName, addrs)
	if _, err := os.Stat(provision.StatePath(filepath.Join(work, "home"), app, "production")); !os.IsNotExist(err) {
		t.Errorf("the state file is still there: %v", err)
	}
	kh, _ := os.ReadFile(filepath.Join(work, "home", "known_hosts"))
	for _, addr := range addrs {
		if strings.Contains(string(kh), addr+" ") {
			t.Errorf("known_hosts still names %s:\n%s", addr, kh)
		}
	}
}

// cleanAppLab is the name of the lab that provision makes for app's
// production, which it takes down now (a run that was killed leaves its
// machines) and again when the test ends, whatever happened.
func cleanAppLab(t *testing.T, app string) string {
	t.Helper()
	name := provision.LabName(provision.Spec{App: app, Env: "production"})
	down := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		hoist(ctx, "", "lab", "down", "--name", name)
	}
	down()
	t.Cleanup(down)
	return name
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the lab needs root under CI")
		}
		t.Skip("the lab needs root")
	}
}

// hoistIn runs hoist with stdin.
func hoistIn(ctx context.Context, dir, stdin string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, hoistBin, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, hoistEnv, strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func operatorKeyFiles(t *testing.T) (string, string) {
	t.Helper()
	priv := filepath.Join(work, "operator_ed25519")
	if _, err := transport.EnsureKey(priv, "e2e-operator"); err != nil {
		t.Fatal(err)
	}
	return priv, priv + ".pub"
}

func readProvisionState(t *testing.T, app string) *provision.State {
	t.Helper()
	st, err := provision.LoadState(filepath.Join(work, "home"), app, "production")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// firstHostKey reads the public host key from the user data a lab
// machine was seeded with.
func firstHostKey(t *testing.T, labName, machine string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/var/lib/hoist/lab", labName, machine, "root/var/lib/cloud/seed/nocloud/user-data"))
	if err != nil {
		t.Fatal(err)
	}
	var ud struct {
		SSHKeys map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal(b, &ud); err != nil || ud.SSHKeys["ed25519_public"] == "" {
		t.Fatalf("user data of %s holds no host key: %v", machine, err)
	}
	return ud.SSHKeys["ed25519_public"]
}

func loadSigner(t *testing.T, path string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sshWithHostKey logs in as admin accepting only hostKey.
func sshWithHostKey(addr string, signer ssh.Signer, hostKey string) error {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return err
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	return c.Close()
}

// assertLabGone checks that nothing of the lab is left on this machine.
func assertLabGone(t *testing.T, labName string, addrs []string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("/var/lib/hoist/lab", labName)); !os.IsNotExist(err) {
		t.Errorf("lab state directory is still there: %v", err)
	}
	ns, _ := os.ReadDir("/run/netns")
	for _, e := range ns {
		if strings.HasPrefix(e.Name(), "hoist-"+labName+"-") {
			t.Errorf("network namespace %s is still there", e.Name())
		}
	}
	links, _ := net.Interfaces()
	for _, l := range links {
		if strings.HasSuffix(l.Name, "-"+labName) {
			t.Errorf("link %s is still there", l.Name)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("-M\x00hoist-"+labName+"-")) {
			t.Errorf("a machine of the lab still runs: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
