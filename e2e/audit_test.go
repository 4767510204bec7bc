//go:build lab

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/transport"
)

// TestAuditNamesTheKeyThatLoggedIn: beside who the client says it is,
// the audit trail holds the SSH key that logged in, as the host saw it.
// A deploy as root names the lab key; a sudoer with a key of its own,
// writing its own request that claims to be someone else, is named by
// its own key and login.
func TestAuditNamesTheKeyThatLoggedIn(t *testing.T) {
	hosts := needLab(t)
	addr := hosts[0]
	a := newApp(t, "whokey", 3740, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	key := filepath.Join(work, "auditor_ed25519")
	pub := newKeyFile(t, key)
	addSudoer(t, addr, "auditor", pub)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := transport.Dial(ctx, "auditor@"+addr, transport.Options{IdentityFiles: []string{key},
		TrustFile: filepath.Join(work, "home", "known_hosts"), SSHConfigFile: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The env verb: a change of secrets is audited.
	env := base64.StdEncoding.EncodeToString([]byte("WHO=\"x\"\n"))
	forged := `{"app":"whokey","actor":{"name":"Ada Lovelace","email":"ada@example.invalid","login":"root@laptop"},"args":"` + env + `"}` + "\n"
	var out, errb strings.Builder
	if err := conn.Run(ctx, "sudo -n /usr/local/bin/hoist host env", strings.NewReader(forged), &out, &errb); err != nil {
		t.Fatalf("secrets as auditor: %v\n%s%s", err, out.String(), errb.String())
	}

	var lines []struct {
		Op      string `json:"op"`
		Release string `json:"release"`
		Who     struct {
			Name string `json:"name"`
		} `json:"who"`
		SSH *struct {
			User, Method, Key, From string
		} `json:"ssh"`
	}
	raw := mustHoist(t, a.dir, "audit", "--json", "-n", "0")
	if err := json.Unmarshal([]byte(raw), &lines); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, raw)
	}
	want := map[string]string{
		"deploy":  "root publickey ED25519 " + fingerprint(t, string(must(os.ReadFile(filepath.Join(work, "home", "lab", "id_ed25519.pub"))))),
		"secrets": "auditor publickey ED25519 " + fingerprint(t, pub),
	}
	for _, l := range lines {
		w, ok := want[l.Op]
		if !ok || l.Op == "deploy" && l.Release != id {
			continue
		}
		delete(want, l.Op)
		got := "none"
		if l.SSH != nil {
			got = l.SSH.User + " " + l.SSH.Method + " " + l.SSH.Key
		}
		if got != w {
			t.Errorf("%s: the host saw the login %q, want %q", l.Op, got, w)
		}
		if l.Op == "secrets" && l.Who.Name != "Ada Lovelace" {
			t.Errorf("who = %q, want what the request claimed", l.Who.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("no audit line for %v:\n%s", want, raw)
	}
	if t.Failed() {
		t.Logf("the host's sshd log:\n%s", labRun(t, dialLab(t, addr), "journalctl -q --no-pager _COMM=sshd | tail -n 20; ps -eo pid,ppid,user,comm,args | tail -n 30"))
	}
}

// fingerprint is the SHA256 fingerprint of an authorized_keys line's
// key, as ssh-keygen -lf prints it.
func fingerprint(t *testing.T, line string) string {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}
