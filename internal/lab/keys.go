package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/transport"
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
	priv, pub, err := transport.NewKeyPair("hoist-lab")
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
