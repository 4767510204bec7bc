package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestKeyIsMadeOnceAndParses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lab", "id_ed25519")
	pub1, err := EnsureKey(p, "hoist-lab")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p + ".pub")
	pub2, err := EnsureKey(p, "hoist-lab")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Fields(pub1)[1] != strings.Fields(pub2)[1] {
		t.Error("EnsureKey made a second key")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	b, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatalf("the .pub was not made again: %v", err)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey(b); err != nil {
		t.Errorf("%s: %v", p+".pub", err)
	}
}
