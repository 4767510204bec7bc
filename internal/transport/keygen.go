package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

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
