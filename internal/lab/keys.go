package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// ensureKey returns the lab key's public half in authorized_keys form,
// making the pair when it does not exist yet.
func ensureKey(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("lab: no key path")
	}
	if b, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return "", fmt.Errorf("lab key %s: %w", path, err)
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " hoist-lab\n"
		if !exists(path + ".pub") {
			if err := atomicfile.Write(path+".pub", []byte(pub), 0o644); err != nil {
				return "", err
			}
		}
		return pub, nil
	}
	priv, pub, err := newKeyPair("hoist-lab")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("lab key: %w", err)
	}
	if err := atomicfile.Write(path, []byte(priv), 0o600); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path+".pub", []byte(pub), 0o644); err != nil {
		return "", err
	}
	return pub, nil
}

// newKeyPair makes an ed25519 key: OpenSSH private key PEM and the
// authorized_keys line.
func newKeyPair(comment string) (string, string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", "", fmt.Errorf("encode key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("encode key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	return string(pem.EncodeToMemory(block)), line, nil
}

// newHostKey returns a host's private key and its public key as
// "ssh-ed25519 AAAA..." (no comment).
func newHostKey() (string, string, error) {
	priv, pub, err := newKeyPair("")
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(pub)
	return priv, f[0] + " " + f[1], nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// userPublicKeys returns the invoking user's ~/.ssh/id_*.pub lines, so
// that plain ssh works on lab hosts too.
func userPublicKeys() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	paths, _ := filepath.Glob(filepath.Join(home, ".ssh", "id_*.pub"))
	var out []string
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			out = append(out, strings.TrimSpace(string(b))+"\n")
		}
	}
	return out
}
