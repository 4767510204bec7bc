package cloudinit

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/goldentest"
)

// A fixed key pair, so that the golden file is stable. It is a test key
// and logs in nowhere.
const (
	testHostPriv = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBzgnH0pX5nK6BGj4T2rWlSE/Y7YoY7aWkmpyxSv8d9uQAAAIgc8y2kHPMt
pAAAAAtzc2gtZWQyNTUxOQAAACBzgnH0pX5nK6BGj4T2rWlSE/Y7YoY7aWkmpyxSv8d9uQ
AAAEA4VuJZ4k3aB0m8C3QYpNdbP8Ke6C3+f3v0u+3r6k9Lr3OCcfSlfmcroEaPhPataVIT
9jtihjtpaSanLFK/x325AAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
`
	testHostPub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHOCcfSlfmcroEaPhPataVIT9jtihjtpaSanLFK/x325"
	testUserKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGa1ZYsq0tA8G3M5Hc2pSFRr0nCCq0RfwxhVDb0Pq9yc alice@laptop"
)

func testData() UserData {
	return UserData{
		Hostname: "hello-production-0", User: "admin",
		AuthorizedKeys: []string{testUserKey},
		HostKeyPrivate: testHostPriv, HostKeyPublic: testHostPub,
		Comment: "hoist provision: app hello, env production, host hello-production-0",
	}
}

func TestRenderGolden(t *testing.T) {
	tests := map[string]func(*UserData){
		"one-key": func(*UserData) {},
		"two-keys": func(u *UserData) {
			u.AuthorizedKeys = append(u.AuthorizedKeys, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob")
		},
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			u := testData()
			edit(&u)
			got, err := Render(u)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, filepath.Join("testdata", name+".yaml"), got)
		})
	}
}

// TestRenderRoundTrip reads the rendered document back: the values
// cloud-init will see are exactly the ones given, the private key
// byte for byte.
func TestRenderRoundTrip(t *testing.T) {
	u := testData()
	out, err := Render(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "#cloud-config\n") {
		t.Fatalf("user data does not start with #cloud-config:\n%s", out)
	}
	var back cloudConfig
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.SSHKeys["ed25519_private"] != testHostPriv || back.SSHKeys["ed25519_public"] != testHostPub {
		t.Errorf("host keys did not survive: %q", back.SSHKeys)
	}
	if len(back.Users) != 1 || back.Users[0].Name != "admin" || !cmp.Equal(back.Users[0].SSHAuthorizedKeys, u.AuthorizedKeys) {
		t.Errorf("users = %+v", back.Users)
	}
	// The host's own name resolves from /etc/hosts: without it each sudo
	// waits for DNS to give up on it (20 s on the lab's bare image).
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil || doc["manage_etc_hosts"] != "localhost" {
		t.Errorf("manage_etc_hosts = %v (%v), want localhost", doc["manage_etc_hosts"], err)
	}
	// With ssh_keys set cloud-init generates no key of its own: the
	// host then has exactly the one hoist knows.
	if !back.SSHDeleteKeys || len(back.SSHKeys) != 2 {
		t.Errorf("the image's own host keys must go and only hoist's stay: deletekeys=%v keys=%v", back.SSHDeleteKeys, sortedKeys(back.SSHKeys))
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := map[string]func(*UserData){
		"bad hostname":     func(u *UserData) { u.Hostname = "Hello World" },
		"root":             func(u *UserData) { u.User = "root" },
		"no keys":          func(u *UserData) { u.AuthorizedKeys = nil },
		"key with newline": func(u *UserData) { u.AuthorizedKeys = []string{testUserKey + "\nssh-ed25519 AAAA evil"} },
		"rsa host key":     func(u *UserData) { u.HostKeyPublic = "ssh-rsa AAAA" },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			u := testData()
			edit(&u)
			if out, err := Render(u); err == nil {
				t.Errorf("Render accepted it:\n%s", out)
			}
		})
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
