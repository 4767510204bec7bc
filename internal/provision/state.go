package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// State is the record of what provision made for one app and
// environment: the one place other verbs (and hoist's DNS records) read
// the hosts' addresses and the balancer's name from. It lives at
// StatePath; the resources themselves are always found again by their
// tags, so a lost state file loses only host keys not yet replaced.
type State struct {
	App      string    `json:"app"`
	Env      string    `json:"env"`
	Provider string    `json:"provider"`
	Region   string    `json:"region,omitempty"`
	User     string    `json:"user"` // login user on every host
	Hosts    []Host    `json:"hosts"`
	Balancer *Balancer `json:"balancer,omitempty"`
	// Resources are what exists, with the provider's ids.
	Resources []Resource `json:"resources"`
	Updated   time.Time  `json:"updated"`

	path string
}

// Host is one provisioned host.
type Host struct {
	Name        string `json:"name"` // APP-ENV-i, also its host name
	ID          string `json:"id,omitempty"`
	Zone        string `json:"zone,omitempty"`
	PublicAddr  string `json:"public_addr,omitempty"`
	PrivateAddr string `json:"private_addr,omitempty"`
	// HostKey is the SSH host key hoist knows it by, "ssh-ed25519 AAAA...".
	HostKey string `json:"host_key,omitempty"`
	// NextHostKey is a replacement being installed; until the
	// replacement is recorded, either key is accepted.
	NextHostKey string `json:"next_host_key,omitempty"`
	// KeyReplaced says HostKey is the one hoist installed over SSH, not
	// the one in the user data (readable through instance metadata).
	KeyReplaced bool `json:"key_replaced"`
}

// Addr is the address hoist reaches the host at.
func (h Host) Addr() string {
	if h.PublicAddr != "" {
		return h.PublicAddr
	}
	return h.PrivateAddr
}

// Balancer is the load balancer in front of the hosts.
type Balancer struct {
	Name    string `json:"name"`
	ID      string `json:"id"` // its ARN on AWS
	DNSName string `json:"dns_name"`
	// Addr is the balancer's address where it has one of its own and no
	// DNS name (the lab's balancer twin).
	Addr string `json:"addr,omitempty"`
	// CA is the root certificate (a PEM file) that the lab's balancer
	// twin's certificate is issued by, for clients to trust.
	CA string `json:"ca,omitempty"`
	// CertificateID is the ACM certificate's ARN; Validation are the DNS
	// records that prove the names for a certificate hoist requested.
	CertificateID string             `json:"certificate_id,omitempty"`
	Validation    []ValidationRecord `json:"validation,omitempty"`
}

// ValidationRecord is a DNS record ACM looks for before it issues.
type ValidationRecord struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Value  string `json:"value"`
}

// StatePath is where the state of app's env is kept under hoist's home
// directory (~/.config/hoist, or HOIST_HOME).
func StatePath(home, app, env string) string {
	return filepath.Join(home, "provision", app, env+".json")
}

// LoadState reads the state of app's env. With no state file it
// returns an empty state that Save writes there.
func LoadState(home, app, env string) (*State, error) {
	p := StatePath(home, app, env)
	st := &State{App: app, Env: env, path: p}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read provision state: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("provision state %s: %w", p, err)
	}
	if st.App != app || st.Env != env {
		return nil, fmt.Errorf("provision state %s is for %s/%s, not %s/%s", p, st.App, st.Env, app, env)
	}
	return st, nil
}

// Exists reports whether the state records anything made.
func (s *State) Exists() bool { return len(s.Hosts) > 0 || len(s.Resources) > 0 }

// Targets are the hosts as hoist's other verbs dial them: user@addr.
func (s *State) Targets() []string {
	var out []string
	for _, h := range s.Hosts {
		if a := h.Addr(); a != "" {
			t := a
			if net.ParseIP(a) != nil && net.ParseIP(a).To4() == nil {
				t = "[" + a + "]"
			}
			if s.User != "" {
				t = s.User + "@" + t
			}
			out = append(out, t)
		}
	}
	return out
}

// Host returns the record of the host named name, adding one if needed.
func (s *State) Host(name string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	s.Hosts = append(s.Hosts, Host{Name: name})
	return &s.Hosts[len(s.Hosts)-1]
}

// Save writes the state atomically.
func (s *State) Save() error {
	s.Updated = time.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("provision state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("provision state: %w", err)
	}
	return atomicfile.Write(s.path, append(b, '\n'), 0o600)
}

// Remove deletes the state file, once everything is destroyed.
func (s *State) Remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove provision state: %w", err)
	}
	os.Remove(filepath.Dir(s.path)) // the app's directory, if now empty
	return nil
}
