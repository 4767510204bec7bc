package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/transport"
)

func privateKeyPEM(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "ci")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "ci", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	return string(pem.EncodeToMemory(block)), sp
}

// TestCredentialsFromTheEnvironment: a CI job's key and pinned host
// keys, from variables or from files named by flags, go to every dial;
// with pinned keys nothing is trusted on first use.
func TestCredentialsFromTheEnvironment(t *testing.T) {
	key, pub := privateKeyPEM(t, "")
	encrypted, _ := privateKeyPEM(t, "secret")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	os.WriteFile(keyFile, []byte(key), 0o600)
	khFile := filepath.Join(dir, "known_hosts")
	os.WriteFile(khFile, []byte("10.0.0.1 "+string(ssh.MarshalAuthorizedKey(pub))), 0o644)
	base := transport.Options{TrustFile: "/home/x/.config/hoist/known_hosts", KnownHostsFiles: nil}

	tests := map[string]struct {
		g       *globalOptions
		env     map[string]string
		signers int
		pinned  bool
		wantErr string
	}{
		"nothing":             {&globalOptions{}, nil, 0, false, ""},
		"key in the env":      {&globalOptions{}, map[string]string{envSSHKey: key}, 1, false, ""},
		"key file":            {&globalOptions{sshKey: keyFile}, map[string]string{envSSHKey: "not used"}, 1, false, ""},
		"encrypted key":       {&globalOptions{}, map[string]string{envSSHKey: encrypted}, 0, false, "is encrypted"},
		"junk key":            {&globalOptions{}, map[string]string{envSSHKey: "junk"}, 0, false, "cannot be read"},
		"known hosts in env":  {&globalOptions{}, map[string]string{envKnownHosts: "10.0.0.1 ssh-ed25519 AAAA"}, 0, true, ""},
		"known hosts file":    {&globalOptions{knownHosts: khFile}, nil, 0, true, ""},
		"missing known hosts": {&globalOptions{knownHosts: filepath.Join(dir, "none")}, nil, 0, false, "--known-hosts"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envSSHKey, "")
			t.Setenv(envKnownHosts, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := tt.g.credentials()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("credentials: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := c.sshOptions(base)
			if len(o.Signers) != tt.signers {
				t.Errorf("%d signers, want %d", len(o.Signers), tt.signers)
			}
			if tt.pinned != (o.TrustFile == "" && len(o.KnownHostsFiles) == 1) {
				t.Errorf("pinned %v: options %+v", tt.pinned, o)
			}
			if tt.pinned {
				b, err := os.ReadFile(o.KnownHostsFiles[0])
				if err != nil || !strings.Contains(string(b), "10.0.0.1 ssh-ed25519") {
					t.Errorf("pinned keys %q, %v", b, err)
				}
			}
			if c.cleanup != nil {
				p := o.KnownHostsFiles[0]
				c.cleanup()
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s is left after the run", p)
				}
			}
		})
	}
}

// TestSecretsKeyFromTheEnvironment: the flag's file first, then the key
// itself from HOIST_AGE_KEY, then HOIST_SECRETS_KEY's file, then hoist's
// own.
func TestSecretsKeyFromTheEnvironment(t *testing.T) {
	t.Setenv("HOIST_HOME", "/h")
	tests := map[string]struct {
		flag, age, path string
		wantPath        string
		wantKey         bool
	}{
		"default":   {"", "", "", "/h/keys/shop.age", false},
		"path":      {"", "", "/k/shop.age", "/k/shop.age", false},
		"age key":   {"", "AGE-SECRET-KEY-1X", "/k/shop.age", "$HOIST_AGE_KEY", true},
		"flag wins": {"/f/key", "AGE-SECRET-KEY-1X", "/k/shop.age", "/f/key", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv(envAgeKey, tt.age)
			t.Setenv("HOIST_SECRETS_KEY", tt.path)
			st := secretsStore(&config.Config{App: "shop", SecretsKey: tt.flag}, "/repo")
			if st.KeyPath != tt.wantPath || (st.Key != nil) != tt.wantKey || st.Path != "/repo/hoist.secrets" {
				t.Errorf("store %+v", st)
			}
		})
	}
}
