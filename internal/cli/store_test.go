package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreKey: `hoist store key` makes the key once and prints its
// public line; a deploy whose key is not the one hoist.yml trusts, or
// that has none, is refused before anything is built or put, and so is
// a store without a public key.
func TestStoreKey(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "built")
	base := "version: 1\napp: shop\nhosts: [10.0.0.1]\nbuild:\n  command: touch " + marker + " && mkdir -p d && touch d/x\n  output: d\nrun:\n  command: ./x\nstore:\n  bucket: shop-releases\n"
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(base), 0o644)
	home := t.TempDir()
	t.Setenv("HOIST_HOME", home)
	t.Setenv("HOIST_CACHE", t.TempDir())
	t.Setenv(envStoreKey, "")

	if _, stderr, err := run(t, dir, "deploy"); err == nil || !strings.Contains(stderr, "store.public_key is not set") || !strings.Contains(stderr, "hoist store key") {
		t.Errorf("a deploy without store.public_key: %v\n%s", err, stderr)
	}
	line, stderr, err := run(t, dir, "store", "key")
	if err != nil || !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.Contains(stderr, "made the store key of shop") {
		t.Fatalf("store key: %v %q\n%s", err, line, stderr)
	}
	keyFile := filepath.Join(home, "keys", "shop.store.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	again, stderr, err := run(t, dir, "store", "key")
	if err != nil || again != line || strings.Contains(stderr, "made") {
		t.Errorf("a second store key made another: %q, want %q\n%s", again, line, stderr)
	}

	// hoist.yml trusts another key.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Skipf("ssh-keygen: %v %s", err, out)
	}
	otherPub, _ := os.ReadFile(other + ".pub")
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(base+"  public_key: "+strings.TrimSpace(string(otherPub))+"\n"), 0o644)
	_, stderr, err = run(t, dir, "deploy")
	if err == nil || !strings.Contains(stderr, "is not the one store.public_key names") || !strings.Contains(stderr, "SHA256:") {
		t.Errorf("a deploy with a key hoist.yml does not trust: %v\n%s", err, stderr)
	}
	if _, stderr, _ := run(t, dir, "store", "key"); !strings.Contains(stderr, "not the one store.public_key names") {
		t.Errorf("store key does not warn of the mismatch:\n%s", stderr)
	}
	// The CI way: the trusted key in the environment.
	b, _ := os.ReadFile(other)
	t.Setenv(envStoreKey, string(b))
	if got, _, err := run(t, dir, "store", "key"); err != nil || !strings.HasPrefix(got, strings.Join(strings.Fields(string(otherPub))[:2], " ")+" ") {
		t.Errorf("store key with $%s: %q %v", envStoreKey, got, err)
	}
	t.Setenv(envStoreKey, "junk")
	if _, stderr, err := run(t, dir, "deploy"); err == nil || !strings.Contains(stderr, "cannot be read") {
		t.Errorf("a junk $%s: %v\n%s", envStoreKey, err, stderr)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("a build ran although the deploy could not sign")
	}
}
