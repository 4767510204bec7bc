package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/signkey"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A deploy from CI runs with no person to ask and no ~/.ssh: the job
// gives hoist its SSH key, the hosts' keys and the secrets key, from its
// secret variables or from files it wrote. Each comes from a flag naming
// a file or from an environment variable holding it:
//
//	--ssh-key FILE       HOIST_SSH_KEY          the private key that logs in
//	--known-hosts FILE   HOIST_SSH_KNOWN_HOSTS  the hosts' keys, pinned
//	--secrets-key FILE   HOIST_AGE_KEY          the age key of hoist secrets
//	--store-key FILE     HOIST_STORE_KEY        the key that signs the store's records
//
// With pinned host keys, a host whose key is not among them is refused:
// nothing is trusted on first use, and nothing is recorded.
const (
	envSSHKey     = "HOIST_SSH_KEY"
	envKnownHosts = "HOIST_SSH_KNOWN_HOSTS"
	envAgeKey     = "HOIST_AGE_KEY"
	envStoreKey   = "HOIST_STORE_KEY"
)

// credentials are what the flags and the environment give; read once
// per run.
type credentials struct {
	once       sync.Once
	err        error
	signers    []ssh.Signer
	knownHosts string // a file of pinned keys, "" for none
	cleanup    func()
}

func (g *globalOptions) credentials() (*credentials, error) {
	c := &g.creds
	c.once.Do(func() { c.err = c.load(g) })
	return c, c.err
}

func (c *credentials) load(g *globalOptions) error {
	key, from, err := fileOrEnv(g.sshKey, "--ssh-key", envSSHKey)
	if err != nil {
		return err
	}
	if key != nil {
		s, err := ssh.ParsePrivateKey(key)
		var pe *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pe):
			return usererr.New("the SSH key of %s is encrypted", from).WithHint("give hoist a key without a passphrase, kept as a secret of the CI job")
		case err != nil:
			return usererr.Wrap(err, "the SSH key of %s cannot be read", from)
		}
		c.signers = []ssh.Signer{s}
	}
	if g.knownHosts != "" {
		if _, err := os.Stat(g.knownHosts); err != nil {
			return usererr.Wrap(err, "--known-hosts")
		}
		c.knownHosts = g.knownHosts
	} else if v := os.Getenv(envKnownHosts); v != "" {
		// The libraries read known_hosts files: this run's own, removed
		// when it ends.
		dir, err := os.MkdirTemp("", "hoist-known-hosts-")
		if err != nil {
			return fmt.Errorf("%s: %w", envKnownHosts, err)
		}
		c.cleanup = func() { os.RemoveAll(dir) }
		c.knownHosts = filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(c.knownHosts, []byte(v+"\n"), 0o600); err != nil {
			return fmt.Errorf("%s: %w", envKnownHosts, err)
		}
	}
	return nil
}

// fileOrEnv is the content of the file flag names, else of env; nil
// when neither is set. from names where it came from, for messages.
func fileOrEnv(file, flag, env string) (b []byte, from string, err error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", usererr.Wrap(err, "%s", flag)
		}
		return b, file, nil
	}
	if v := os.Getenv(env); v != "" {
		return []byte(v + "\n"), "$" + env, nil
	}
	return nil, "", nil
}

// sshOptions lays the credentials over the options of a dial: the key
// first, and with pinned host keys those alone.
func (c *credentials) sshOptions(o transport.Options) transport.Options {
	o.Signers = append(c.signers, o.Signers...)
	if c.knownHosts != "" {
		o.KnownHostsFiles = []string{c.knownHosts}
		o.TrustFile = ""
	}
	return o
}

// secretsStore is the app's encrypted secrets and the key outside the
// repository that opens them: --secrets-key's file, HOIST_AGE_KEY's
// content, the file HOIST_SECRETS_KEY names, or the app's key under
// hoist's home. A destination has its own of both, hoist.DEST.secrets
// and APP.DEST.age: no destination reads, or sends to its hosts,
// another's secrets.
func secretsStore(cfg *config.Config, repo string) secrets.Store {
	name, keyName := secrets.FileName, cfg.App+".age"
	if d := cfg.Destination; d != "" {
		name, keyName = secrets.DestinationFile(d), cfg.App+"."+d+".age"
	}
	st := secrets.Store{Path: filepath.Join(repo, name)}
	switch {
	case cfg.SecretsKey != "":
		st.KeyPath = cfg.SecretsKey
	case os.Getenv(envAgeKey) != "":
		st.KeyPath, st.Key = "$"+envAgeKey, []byte(os.Getenv(envAgeKey)+"\n")
	case os.Getenv("HOIST_SECRETS_KEY") != "":
		st.KeyPath = os.Getenv("HOIST_SECRETS_KEY")
	default:
		st.KeyPath = filepath.Join(hoistHome(), "keys", keyName)
	}
	return st
}

// storeKeyPath is where the key that signs the app's store records is
// kept under hoist's home, beside the secrets key: APP.store.key, and
// APP.DEST.store.key for a destination.
func storeKeyPath(cfg *config.Config) string {
	name := cfg.App + ".store.key"
	if d := cfg.Destination; d != "" {
		name = cfg.App + "." + d + ".store.key"
	}
	return filepath.Join(hoistHome(), "keys", name)
}

// storeKey is the key that signs the app's store records: --store-key's
// file, HOIST_STORE_KEY's content, or the app's key under hoist's home;
// from names where it came from.
func (g *globalOptions) storeKey(cfg *config.Config) (key ed25519.PrivateKey, from string, err error) {
	b, from, err := fileOrEnv(g.storeKeyFile, "--store-key", envStoreKey)
	if err != nil {
		return nil, "", err
	}
	if b == nil {
		from = storeKeyPath(cfg)
		if b, err = os.ReadFile(from); errors.Is(err, os.ErrNotExist) {
			return nil, from, usererr.New("no store key at %s: the key that signs the release store's records", from).
				WithHint("run `hoist store key` to make it (it prints the public key for store.public_key), or give it with --store-key or $%s", envStoreKey)
		} else if err != nil {
			return nil, from, usererr.Wrap(err, "the store key")
		}
	}
	if key, err = signkey.ParsePrivateKey(b); err != nil {
		return nil, from, usererr.Wrap(err, "the store key of %s cannot be read", from)
	}
	return key, from, nil
}
