// Package signkey reads and makes the ed25519 key that signs an app's
// release records (internal/store), in OpenSSH's formats. It is a leaf:
// the host protocol checks a store's public key with it, and the store
// verifies records with it, without either importing the other.
package signkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The key that signs records is an ed25519 key in OpenSSH's format: one
// `ssh-keygen -t ed25519 -N ''` makes does, and hoist makes one the same
// way (GenerateKey). Its public half is written in hoist.yml as an
// authorized_keys line (ssh-ed25519 AAAA...), and hosts trust records
// signed by it alone.

// ParsePrivateKey reads an unencrypted OpenSSH ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	k, err := ssh.ParseRawPrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, errors.New("the key is encrypted: hoist needs it without a passphrase")
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ed25519.PrivateKey:
		return *k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("the key is a %T, not an ed25519 key", k)
}

// GenerateKey makes a key and returns its OpenSSH private key file.
func GenerateKey(comment string) ([]byte, ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("make key: %w", err)
	}
	return pem.EncodeToMemory(blk), priv, nil
}

// ParsePublicKey reads an authorized_keys line of an ed25519 key.
func ParsePublicKey(line string) (ed25519.PublicKey, error) {
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("not a public key line (ssh-ed25519 AAAA...): %w", err)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("more than one public key")
	}
	cpk, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("a %s key, not ssh-ed25519", pk.Type())
	}
	k, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %s key, not ssh-ed25519", pk.Type())
	}
	return k, nil
}

// PublicKeyLine is key's authorized_keys line, with comment.
func PublicKeyLine(key ed25519.PublicKey, comment string) (string, error) {
	pk, err := ssh.NewPublicKey(key)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}

// Fingerprint is key's SHA256 fingerprint, as ssh-keygen -l shows it.
func Fingerprint(key ed25519.PublicKey) (string, error) {
	pk, err := ssh.NewPublicKey(key)
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(pk), nil
}
