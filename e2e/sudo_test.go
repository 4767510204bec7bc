//go:build lab

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestNonRootLogin logs in as a user with passwordless sudo, named each
// of the three ways hoist learns a login user: ssh.user in hoist.yml,
// user@host, and User in ~/.ssh/config. Setup, deploy and status work
// through sudo every time. The key is authorized for that user alone,
// and hoist is given no other, so no command can log in as root.
func TestNonRootLogin(t *testing.T) {
	addr := needLab(t)[0]
	key := filepath.Join(work, "deploy_ed25519")
	addSudoer(t, addr, "deploy", newKeyFile(t, key))

	// hoist's own home knows the lab's host keys but holds no lab key;
	// $HOME has no keys either, only the ~/.ssh/config of a case.
	hoistHome := filepath.Join(work, "home-deploy")
	userHome := filepath.Join(work, "user-deploy")
	for _, d := range []string{hoistHome, filepath.Join(userHome, ".ssh")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	known, err := os.ReadFile(filepath.Join(work, "home", "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hoistHome, "known_hosts"), known, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOIST_HOME=" + hoistHome, "HOME=" + userHome}
	for _, kv := range hoistEnv {
		if k, _, _ := strings.Cut(kv, "="); k != "HOIST_HOME" && k != "HOME" && k != "SSH_AUTH_SOCK" {
			env = append(env, kv)
		}
	}
	// The Go toolchain keeps its caches where it had them.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		env = append(env, v+"="+strings.TrimSpace(string(must(exec.Command("go", "env", v).Output()))))
	}

	a := newApp(t, "sudoer", 3230, []string{addr}, "")
	tests := []struct {
		name      string
		host      string
		ssh       string // hoist.yml's ssh section
		sshConfig string // ~/.ssh/config
	}{
		{"ssh.user", addr, "ssh:\n  user: deploy\n  identity_file: " + key + "\n", ""},
		{"user@host", "deploy@" + addr, "ssh:\n  identity_file: " + key + "\n", ""},
		{"ssh_config", addr, "", "Host " + addr + "\n  User deploy\n  IdentityFile " + key + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(userHome, ".ssh", "config"), []byte(tc.sshConfig), 0o600); err != nil {
				t.Fatal(err)
			}
			a.writeConfig(t, []string{tc.host}, tc.ssh)
			a.change(t)
			run := func(args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				stdout, stderr, err := hoistWithEnv(ctx, a.dir, env, args...)
				if err != nil {
					t.Fatalf("hoist %s: %v\n%s", strings.Join(args, " "), err, stderr)
				}
				return stdout
			}
			run("setup")
			id := strings.TrimSpace(run("deploy"))
			a.wantServed(t, []string{addr}, id)
			if out := run("status"); !strings.Contains(out, id) || !strings.Contains(out, "active") {
				t.Errorf("status does not show %s active:\n%s", id, out)
			}
		})
	}
}

// newKeyFile writes a new ed25519 private key at path and returns its
// authorized_keys line.
func newKeyFile(t *testing.T, path string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(sshPub))
}

// addSudoer makes user on a lab host, with passwordless sudo, logging in
// with authorizedKey only.
func addSudoer(t *testing.T, addr, user, authorizedKey string) {
	t.Helper()
	script := `set -e
id ` + user + ` >/dev/null 2>&1 || useradd --create-home --shell /bin/sh ` + user + `
echo '` + user + ` ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/` + user + `
chmod 0440 /etc/sudoers.d/` + user + `
install -d -m 0700 -o ` + user + ` -g ` + user + ` /home/` + user + `/.ssh
cat > /home/` + user + `/.ssh/authorized_keys
chown ` + user + `: /home/` + user + `/.ssh/authorized_keys
chmod 0600 /home/` + user + `/.ssh/authorized_keys
sudo -n -u ` + user + ` sudo -n true`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr strings.Builder
	if err := dialLab(t, addr).Run(ctx, script, strings.NewReader(authorizedKey), nil, &stderr); err != nil {
		t.Fatalf("make sudoer %s on %s: %v\n%s", user, addr, err, stderr.String())
	}
}
