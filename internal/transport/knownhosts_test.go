package transport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestReplaceKnownHosts(t *testing.T) {
	// A hashed entry for 10.0.0.5, as ssh-keygen -H writes it.
	hashed := knownhosts.HashHostname("10.0.0.5")
	tests := map[string]struct {
		in   string
		keys map[string]string
		want string
	}{
		"add to empty": {
			in:   "",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 NEW"},
			want: "10.0.0.5 ssh-ed25519 NEW\n",
		},
		"replace plain and bracketed, keep others": {
			in:   "other ssh-ed25519 A\n10.0.0.5 ssh-ed25519 OLD\n[10.0.0.5]:22 ssh-rsa OLD2\n10.0.0.50 ssh-ed25519 B\n",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 NEW"},
			want: "other ssh-ed25519 A\n10.0.0.50 ssh-ed25519 B\n10.0.0.5 ssh-ed25519 NEW\n",
		},
		"replace hashed": {
			in:   hashed + " ssh-ed25519 OLD\n",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 NEW"},
			want: "10.0.0.5 ssh-ed25519 NEW\n",
		},
		"line naming several hosts": {
			in:   "10.0.0.6,10.0.0.5 ssh-ed25519 OLD\n",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 NEW"},
			want: "10.0.0.5 ssh-ed25519 NEW\n",
		},
		"other port is another host": {
			in:   "[10.0.0.5]:2222 ssh-ed25519 KEEP\n",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 NEW"},
			want: "[10.0.0.5]:2222 ssh-ed25519 KEEP\n10.0.0.5 ssh-ed25519 NEW\n",
		},
		"forget": {
			in:   "# comment\n10.0.0.5 ssh-ed25519 OLD\n@revoked 10.0.0.9 ssh-ed25519 R\n",
			keys: map[string]string{"10.0.0.5": ""},
			want: "# comment\n@revoked 10.0.0.9 ssh-ed25519 R\n",
		},
		"forget last line": {
			in:   "10.0.0.5 ssh-ed25519 OLD\n",
			keys: map[string]string{"10.0.0.5": ""},
			want: "",
		},
		"two keys while one replaces the other": {
			in:   "10.0.0.5 ssh-ed25519 OLD\n",
			keys: map[string]string{"10.0.0.5": "ssh-ed25519 OLD\nssh-ed25519 NEW"},
			want: "10.0.0.5 ssh-ed25519 OLD\n10.0.0.5 ssh-ed25519 NEW\n",
		},
		"several, sorted": {
			in:   "10.0.0.12 ssh-ed25519 OLD\n",
			keys: map[string]string{"10.0.0.12": "ssh-ed25519 B", "10.0.0.11": "ssh-ed25519 A"},
			want: "10.0.0.11 ssh-ed25519 A\n10.0.0.12 ssh-ed25519 B\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, replaceKnownHosts(tc.in, tc.keys)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetKnownHostsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "known_hosts")
	if err := SetKnownHosts(p, map[string]string{"10.0.0.5": ""}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("forgetting in a missing file made it: %v", err)
	}
	if err := SetKnownHosts(p, map[string]string{"10.0.0.5": "ssh-ed25519 AAAA"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
