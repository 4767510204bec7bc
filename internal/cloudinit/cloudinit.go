// Package cloudinit renders the user data hoist gives every host it
// provisions, whatever the provider: cloud-init on the host's first boot
// makes the login user with the operator's key and installs SSH host keys
// that hoist generated, so that hoist's first connection is checked
// against a key it already knows rather than trusted on first use.
package cloudinit

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
)

// UserData is what one host's first boot needs.
type UserData struct {
	// Hostname the host takes.
	Hostname string
	// User is the login user, given passwordless sudo.
	User string
	// AuthorizedKeys are authorized_keys lines that log in as User.
	AuthorizedKeys []string
	// HostKey is the host's SSH host key pair, ed25519: the private key
	// in OpenSSH PEM form and the public key as "ssh-ed25519 AAAA...".
	HostKeyPrivate, HostKeyPublic string
	// Comment is a line put at the top, after #cloud-config, saying who
	// made the file.
	Comment string
}

// cloudConfig is the part of cloud-init's cloud-config that hoist uses,
// in the order it is written.
type cloudConfig struct {
	Hostname         string `yaml:"hostname"`
	PreserveHostname bool   `yaml:"preserve_hostname"`
	// ManageEtcHosts "localhost" has cloud-init give the host name a
	// 127.0.1.1 line in /etc/hosts and leave the rest of the file alone:
	// sudo looks the host's own name up, and without the line each sudo
	// waits for DNS to fail.
	ManageEtcHosts string `yaml:"manage_etc_hosts"`
	Users          []user `yaml:"users"`
	DisableRoot    bool   `yaml:"disable_root"`
	SSHPwauth      bool   `yaml:"ssh_pwauth"`
	// With ssh_keys given, cloud-init generates none of its own.
	SSHDeleteKeys bool              `yaml:"ssh_deletekeys"`
	SSHKeys       map[string]string `yaml:"ssh_keys"`
	WriteFiles    []writeFile       `yaml:"write_files"`
}

type user struct {
	Name              string   `yaml:"name"`
	Gecos             string   `yaml:"gecos"`
	Shell             string   `yaml:"shell"`
	Sudo              string   `yaml:"sudo"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Permissions string `yaml:"permissions"`
	Owner       string `yaml:"owner"`
	Content     string `yaml:"content"`
}

// sshdConfig hardens sshd beyond the images' defaults: keys only, no
// root login (hoist logs in as the user and uses sudo), and only the
// host key hoist gave.
const sshdConfig = `# Written by hoist's cloud-init user data.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
`

var (
	hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	userPattern     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Render returns the user data: a #cloud-config document.
func Render(u UserData) ([]byte, error) {
	if err := u.check(); err != nil {
		return nil, err
	}
	cc := cloudConfig{
		Hostname:       u.Hostname,
		ManageEtcHosts: "localhost",
		Users: []user{{
			Name: u.User, Gecos: "hoist operator", Shell: "/bin/bash",
			Sudo: "ALL=(ALL) NOPASSWD:ALL", LockPasswd: true,
			SSHAuthorizedKeys: u.AuthorizedKeys,
		}},
		DisableRoot:   true,
		SSHDeleteKeys: true,
		SSHKeys: map[string]string{
			"ed25519_private": strings.TrimRight(u.HostKeyPrivate, "\n") + "\n",
			"ed25519_public":  u.HostKeyPublic,
		},
		WriteFiles: []writeFile{{Path: "/etc/ssh/sshd_config.d/10-hoist.conf", Permissions: "0644", Owner: "root:root", Content: sshdConfig}},
	}
	body, err := yaml.MarshalWithOptions(cc, yaml.UseLiteralStyleIfMultiline(true), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("render user data: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	for _, line := range strings.Split(strings.TrimSpace(u.Comment), "\n") {
		if line != "" {
			b.WriteString("# " + line + "\n")
		}
	}
	b.Write(body)
	return b.Bytes(), nil
}

func (u UserData) check() error {
	switch {
	case !hostnamePattern.MatchString(u.Hostname):
		return fmt.Errorf("render user data: %q is not a host name", u.Hostname)
	case !userPattern.MatchString(u.User) || u.User == "root":
		return fmt.Errorf("render user data: %q is not a login user", u.User)
	case len(u.AuthorizedKeys) == 0:
		return fmt.Errorf("render user data: no key logs in as %s", u.User)
	case !strings.HasPrefix(u.HostKeyPublic, "ssh-ed25519 ") || !strings.Contains(u.HostKeyPrivate, "OPENSSH PRIVATE KEY"):
		return fmt.Errorf("render user data: the host key must be an ed25519 pair in OpenSSH form")
	}
	for _, k := range u.AuthorizedKeys {
		if strings.ContainsAny(k, "\n\r") || len(strings.Fields(k)) < 2 {
			return fmt.Errorf("render user data: %q is not an authorized_keys line", k)
		}
	}
	return nil
}
