package lab

import (
	"bufio"
	"bytes"
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
		return string(ssh.MarshalAuthorizedKey(s.PublicKey())), nil
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

// recordKnownHost replaces addr's lines in the known_hosts file with key.
func recordKnownHost(path, addr, key string) error {
	if path == "" {
		return nil
	}
	lines, err := knownHostsWithout(path, addr)
	if err != nil {
		return err
	}
	lines = append(lines, addr+" "+key)
	return atomicfile.Write(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// forgetKnownHost removes addr's lines from the known_hosts file.
func forgetKnownHost(path, addr string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	lines, err := knownHostsWithout(path, addr)
	if err != nil {
		return err
	}
	data := strings.Join(lines, "\n")
	if data != "" {
		data += "\n"
	}
	return atomicfile.Write(path, []byte(data), 0o600)
}

// knownHostsWithout reads path and drops the lines whose host list names
// addr (plain, or as [addr]:22).
func knownHostsWithout(path, addr string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var keep []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && namesHost(f[0], addr) {
			continue
		}
		if strings.TrimSpace(line) != "" {
			keep = append(keep, line)
		}
	}
	return keep, nil
}

func namesHost(hosts, addr string) bool {
	for _, h := range strings.Split(hosts, ",") {
		if h == addr || h == "["+addr+"]:22" {
			return true
		}
	}
	return false
}
