package signkey

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	file, priv, err := GenerateKey("shop")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(file)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("parse own key: %v", err)
	}
	line, err := PublicKeyLine(priv.Public().(ed25519.PublicKey), "hoist store key of shop")
	if err != nil || !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.HasSuffix(line, " hoist store key of shop") {
		t.Fatalf("public key line %q: %v", line, err)
	}
	pub, err := ParsePublicKey(line)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("parse own public key line: %v", err)
	}
	for _, bad := range []string{"", "ssh-ed25519", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7", line + "\n" + line} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted it", bad)
		}
	}
	if _, err := ParsePrivateKey([]byte("not a key")); err == nil {
		t.Error("ParsePrivateKey accepted garbage")
	}
}
