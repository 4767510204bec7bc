package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"golang.org/x/crypto/ssh"
)

// NewKeyPair makes an ed25519 key: OpenSSH private key PEM and the
// authorized_keys line.
func NewKeyPair(comment string) (string, string, error) {
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

// NewHostKey returns a host's private key and its public key as
// "ssh-ed25519 AAAA..." (no comment).
func NewHostKey() (string, string, error) {
	priv, pub, err := NewKeyPair("")
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(pub)
	return priv, f[0] + " " + f[1], nil
}

// EnsureKey returns the public half of the key at path in
// authorized_keys form, with comment, making the pair (path and
// path.pub) when it does not exist yet.
func EnsureKey(path, comment string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("ensure key: no path")
	}
	if b, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return "", fmt.Errorf("key %s: %w", path, err)
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " " + comment + "\n"
		if !fileExists(path + ".pub") {
			if err := atomicfile.Write(path+".pub", []byte(pub), 0o644); err != nil {
				return "", err
			}
		}
		return pub, nil
	}
	priv, pub, err := NewKeyPair(comment)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("key %s: %w", path, err)
	}
	if err := atomicfile.Write(path, []byte(priv), 0o600); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path+".pub", []byte(pub), 0o644); err != nil {
		return "", err
	}
	return pub, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
