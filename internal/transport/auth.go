package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authMethods returns the ways to log in, in order: ssh-agent, then key
// files (Options, ssh_config, then the usual ~/.ssh names). It also names
// what it tried, for the error when all fail, and a func to close the
// agent connection.
func authMethods(o Options, cfg *ssh_config.Config, alias string) ([]ssh.AuthMethod, []string, func()) {
	var methods []ssh.AuthMethod
	var tried []string
	closer := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			ag := agent.NewClient(c)
			methods = append(methods, ssh.PublicKeysCallback(ag.Signers))
			tried = append(tried, "ssh-agent")
			closer = func() { c.Close() }
		}
	}
	signers := append([]ssh.Signer{}, o.Signers...)
	for _, s := range o.Signers {
		tried = append(tried, "a key "+ssh.FingerprintSHA256(s.PublicKey()))
	}
	seen := map[string]bool{}
	files := append([]string{}, o.IdentityFiles...)
	for _, f := range configGetAll(cfg, alias, "IdentityFile") {
		files = append(files, expand(f, o.home()))
	}
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		files = append(files, filepath.Join(o.home(), ".ssh", name))
	}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		var pe *ssh.PassphraseMissingError
		if errors.As(err, &pe) {
			if o.Log != nil {
				fmt.Fprintf(o.Log, "note: %s is encrypted; load it into ssh-agent to use it\n", f)
			}
			continue
		}
		if err != nil {
			continue
		}
		signers = append(signers, s)
		tried = append(tried, f)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if len(tried) == 0 {
		tried = []string{"no keys found"}
	}
	return methods, tried, closer
}

func expand(p, home string) string {
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}
