//go:build lab

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/release"
)

// TestSecretsReachHostOnly sets secrets, deploys, and checks that they
// are on the host in a 0600 file the app sees, and nowhere else: not in
// the release tarball, not in hoist's output, not in the journal.
func TestSecretsReachHostOnly(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "secret", 3108, hosts[:1], "")
	mustHoist(t, a.dir, "setup")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	token := "tok-" + strings.Repeat("z", 20) + `"q\`
	cmd := exec.CommandContext(ctx, hoistBin, "secrets", "set", "API_TOKEN")
	cmd.Dir, cmd.Env, cmd.Stdin = a.dir, hoistEnv, strings.NewReader(token+"\n")
	if out, err := cmd.CombinedOutput(); err != nil || bytes.Contains(out, []byte(token)) {
		t.Fatalf("secrets set: %v\n%s", err, out)
	}
	mustHoist(t, a.dir, "secrets", "gen", "SECRET_KEY_BASE")
	if got := mustHoist(t, a.dir, "secrets", "list"); got != "API_TOKEN\nSECRET_KEY_BASE\n" {
		t.Errorf("secrets list = %q", got)
	}
	a.git(t, "add", "hoist.secrets")
	a.commit(t, "secrets")

	stdout, stderr, err := hoist(ctx, a.dir, "deploy")
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(stdout)
	conn := dialLab(t, hosts[0])
	var out bytes.Buffer
	if err := conn.Run(ctx, "stat -c '%a %U' /var/lib/hoist/secret/shared/env; grep -c . /var/lib/hoist/secret/shared/env", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "600 root\n2\n" {
		t.Errorf("env file: %q, want mode 600, owner root, 2 lines", out.String())
	}
	skb := mustHoist(t, a.dir, "exec", "--", "sh", "-c", `printf %s "$SECRET_KEY_BASE"`)
	if len(skb) != 64 {
		t.Errorf("the app sees SECRET_KEY_BASE of %d characters, want 64", len(skb))
	}
	if got := mustHoist(t, a.dir, "exec", "--", "printenv", "API_TOKEN"); got != token+"\n" {
		t.Errorf("the app sees API_TOKEN %q, want %q", got, token)
	}

	leaks := map[string]string{"deploy output": stdout + stderr}
	leaks["logs"] = mustHoist(t, a.dir, "logs", "-n", "500")
	paths, _ := filepath.Glob(filepath.Join(work, "cache", "releases", "secret", id+".*.tar.zst"))
	if len(paths) != 1 {
		t.Fatalf("want one packed release %s, found %v", id, paths)
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unpacked := filepath.Join(t.TempDir(), "r")
	if err := release.Unpack(f, unpacked); err != nil {
		t.Fatal(err)
	}
	var tree strings.Builder
	filepath.Walk(unpacked, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			tree.Write(b)
		}
		return nil
	})
	leaks["release tarball"] = tree.String()
	var journal bytes.Buffer
	conn.Run(ctx, "journalctl --no-pager -o cat", nil, &journal, nil)
	leaks["whole journal"] = journal.String()
	for where, text := range leaks {
		for name, secret := range map[string]string{"API_TOKEN": token, "SECRET_KEY_BASE": skb} {
			if strings.Contains(text, secret) {
				t.Errorf("the value of %s appears in the %s", name, where)
			}
		}
	}
}
