//go:build lab

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestProvisionHeals: on a host provisioned from the bare image, sudo
// answers at once (its own name resolves); a provision killed while it
// sets the host up is finished by the next one (not "nothing changed"),
// and a deploy meanwhile says hoist is not installed and to run setup;
// a deploy lock left by a process of this machine that is gone is
// taken over with a warning, and one held from elsewhere names its
// holder and `hoist lock release`.
func TestProvisionHeals(t *testing.T) {
	needRoot(t)
	const app = "heal"
	opPriv, opPub := operatorKeyFiles(t)
	a := newApp(t, app, 3410, nil, fmt.Sprintf("infra:\n  provider: lab\n  count: 1\n  public_key: %s\n", opPub))
	cleanAppLab(t, app)

	// A provision killed once it starts setting the host up.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd, stderr := startHoist(ctx, t, a.dir, "provision")
	var seen bytes.Buffer
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "setting up 1 new host(s)") {
			cmd.Process.Kill()
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("provision never started setting up the host:\n%s", seen.String())
	}
	st := readProvisionState(t, app)
	if len(st.Hosts) != 1 || !st.Hosts[0].KeyReplaced {
		t.Fatalf("state after the killed provision: %+v", st.Hosts)
	}
	_, addr, _ := strings.Cut(st.Targets()[0], "@")
	addr = strings.Trim(addr, "[]")
	admin := adminSSH(t, addr, opPriv, st.Hosts[0].HostKey)

	// sudo does not wait on name resolution (it waited 20 s).
	start := time.Now()
	if out, err := admin("sudo -n true"); err != nil {
		t.Fatalf("sudo -n true: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 2*time.Second {
		hosts, _ := admin("cat /etc/hosts; hostname")
		t.Errorf("sudo -n true took %s on a provisioned host; /etc/hosts and hostname:\n%s", d.Round(time.Millisecond), hosts)
	}

	// Wherever the kill landed, the setup did not go through; make it
	// land before hoist was installed, as it did in the report.
	if out, err := admin("sudo -n rm -f /usr/local/bin/hoist /var/lib/hoist/" + app + "/setup.json"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	errOut := failHoist(t, a.dir, "deploy")
	if !strings.Contains(errOut, "hoist is not installed on") || !strings.Contains(errOut, "hoist setup") || strings.Contains(errOut, "another deploy holds the lock") {
		t.Errorf("deploy to a host without hoist:\n%s", errOut)
	}
	_, perr, err := hoist(ctx, a.dir, "provision")
	if err != nil || strings.Contains(perr, "nothing changed") || !strings.Contains(perr, "whose setup is not done") {
		t.Fatalf("provision after the killed one: %v\n%s", err, perr)
	}
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, []string{addr}, id)
	if _, perr, err := hoist(ctx, a.dir, "provision"); err != nil || !strings.Contains(perr, "nothing changed") {
		t.Errorf("provision once all is set up: %v\n%s", err, perr)
	}

	// A lock left by a deploy of this machine whose process is gone.
	machineID, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Skipf("no machine id here: %v", err)
	}
	dead := exec.Command("true")
	dead.Run()
	putLock := func(lk map[string]any) {
		t.Helper()
		b, _ := json.Marshal(lk)
		if out, err := admin(fmt.Sprintf("echo '%s' | sudo -n tee /var/lib/hoist/%s/deploy.lock >/dev/null", b, app)); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	putLock(map[string]any{"holder": "root@vm (pid 24983)", "since": time.Now().Add(-time.Hour), "op": "deploy x",
		"machine": "machine-id:" + strings.TrimSpace(string(machineID)), "pid": dead.Process.Pid})
	a.change(t)
	_, derr, err := hoist(ctx, a.dir, "deploy")
	if err != nil || !strings.Contains(derr, "taking over the deploy lock of root@vm (pid 24983)") {
		t.Errorf("deploy over a stale lock of this machine: %v\n%s", err, derr)
	}
	// One from another machine is not taken: the error says how to clear it.
	putLock(map[string]any{"holder": "ann@laptop (pid 7)", "since": time.Now().Add(-time.Hour), "op": "deploy y", "machine": "machine-id:0123", "pid": 7})
	a.change(t)
	errOut = failHoist(t, a.dir, "deploy")
	if !strings.Contains(errOut, "another deploy holds the lock: ann@laptop (pid 7)") || !strings.Contains(errOut, "`hoist lock release`") {
		t.Errorf("deploy over another machine's lock:\n%s", errOut)
	}
	mustHoist(t, a.dir, "lock", "release")
	mustHoist(t, a.dir, "deploy")
	if _, stderr, err := hoistIn(ctx, a.dir, app+"\n", "destroy"); err != nil {
		t.Errorf("destroy: %v\n%s", err, stderr)
	}
}

// adminSSH runs commands on addr as the provisioned login user, with
// the operator's key, accepting only hostKey.
func adminSSH(t *testing.T, addr, keyFile, hostKey string) func(cmd string) (string, error) {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(loadSigner(t, keyFile))},
		HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(cmd string) (string, error) {
		s, err := c.NewSession()
		if err != nil {
			return "", err
		}
		defer s.Close()
		out, err := s.CombinedOutput(cmd)
		return string(out), err
	}
}
