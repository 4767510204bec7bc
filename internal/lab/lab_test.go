package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInterfaceNamesFitLinuxLimit(t *testing.T) {
	long := "abcdefgh" // the longest valid lab name
	tests := map[string]string{
		"bridge":           bridgeName(long),
		"veth, host 0":     vethName(long, 0),
		"veth peer, last":  vethName(long, 200) + "p",
		"veth, short name": vethName("a", 9),
	}
	for name, ifname := range tests {
		t.Run(name, func(t *testing.T) {
			if len(ifname) > 15 {
				t.Errorf("interface name %q is %d bytes, Linux allows 15", ifname, len(ifname))
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"default":        {"lab", true},
		"digits":         {"t12345", true},
		"eight letters":  {"abcdefgh", true},
		"nine letters":   {"abcdefghi", false},
		"upper case":     {"Lab", false},
		"dash":           {"a-b", false},
		"empty":          {"", false},
		"path separator": {"a/b", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := validName(tc.in); got != tc.want {
				t.Errorf("validName(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDefaultSubnet(t *testing.T) {
	tests := map[string]string{"lab": "", "e2e": "", "t1234": "", "abcdefgh": ""}
	seen := map[string]string{}
	for name := range tests {
		t.Run(name, func(t *testing.T) {
			s := DefaultSubnet(name)
			if s != DefaultSubnet(name) {
				t.Fatalf("DefaultSubnet(%q) is not deterministic", name)
			}
			if _, err := hostAddr(s, 0); err != nil || !strings.HasPrefix(s, "10.213.") {
				t.Errorf("DefaultSubnet(%q) = %s: %v", name, s, err)
			}
		})
		seen[DefaultSubnet(name)] = name
	}
	if len(seen) != len(tests) {
		t.Errorf("names share subnets: %v", seen)
	}
}

func TestHostAddr(t *testing.T) {
	tests := map[string]struct {
		subnet string
		i      int
		want   string
		ok     bool
	}{
		"bridge":          {"10.213.7.0/24", -1, "10.213.7.1", true},
		"first host":      {"10.213.7.0/24", 0, "10.213.7.11", true},
		"second host":     {"10.213.7.0/24", 1, "10.213.7.12", true},
		"unmasked subnet": {"10.213.7.9/24", 0, "10.213.7.11", true},
		"last host":       {"10.213.7.0/24", 200, "10.213.7.211", true},
		"no room":         {"10.213.7.0/24", 201, "", false},
		"a /16":           {"10.0.0.0/16", 0, "", false},
		"IPv6":            {"fd00::/120", 0, "", false},
		"garbage":         {"ten", 0, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := hostAddr(tc.subnet, tc.i)
			if (err == nil) != tc.ok {
				t.Fatalf("hostAddr(%q, %d) error = %v, want ok=%v", tc.subnet, tc.i, err, tc.ok)
			}
			if got != tc.want {
				t.Errorf("hostAddr(%q, %d) = %q, want %q", tc.subnet, tc.i, got, tc.want)
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	tests := map[string]*state{
		"empty": {Name: "x", Subnet: "10.213.9.0/24", Hosts: []Host{}},
		"two hosts": {Name: "x", Subnet: "10.213.9.0/24", Hosts: []Host{
			{Name: "hoist-x-0", Addr: "10.213.9.11", PID: 42},
			{Name: "hoist-x-1", Addr: "10.213.9.12", PID: 43},
		}},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := saveState(dir, want); err != nil {
				t.Fatal(err)
			}
			got, err := loadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		st, err := loadState(t.TempDir())
		if err != nil || len(st.Hosts) != 0 {
			t.Errorf("loadState of a new lab = %+v, %v", st, err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o644)
		if _, err := loadState(dir); err == nil {
			t.Error("a corrupt state file was accepted")
		}
	})
}

func TestIsNspawnOf(t *testing.T) {
	tests := map[string]struct {
		cmdline string
		want    bool
	}{
		"ours":          {"systemd-nspawn\x00--quiet\x00-D\x00/r\x00-b\x00-M\x00hoist-a-0\x00--register=no\x00", true},
		"other machine": {"systemd-nspawn\x00-D\x00/r\x00-b\x00-M\x00hoist-a-10\x00", false},
		"other program": {"sleep\x00-M\x00hoist-a-0\x00", false},
		"full path":     {"/usr/bin/systemd-nspawn\x00-M\x00hoist-a-0\x00", true},
		"empty":         {"", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := isNspawnOf(tc.cmdline, "hoist-a-0"); got != tc.want {
				t.Errorf("isNspawnOf(%q) = %v, want %v", tc.cmdline, got, tc.want)
			}
		})
	}
}

func TestStripANSI(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":  {"Welcome", "Welcome"},
		"colour": {"[\x1b[0;32m  OK  \x1b[0m] Started", "[  OK  ] Started"},
		"bold":   {"\x1b[0;1;31mFailed\x1b[0m", "Failed"},
		"cut":    {"end\x1b[", "end"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := stripANSI(tc.in); got != tc.want {
				t.Errorf("stripANSI(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestCopyFallback builds a machine tree by copying when overlayfs is not
// used, and finds it again on the next boot without copying.
func TestCopyFallback(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "os-release"), []byte("ID=debian\n"), 0o644)
	os.Symlink("etc/os-release", filepath.Join(base, "link"))
	m := filepath.Join(dir, "m")
	o := Options{forceCopy: true}
	o.defaults()
	ctx := context.Background()
	if err := prepareRoot(ctx, o, base, m); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(m, "root", "link")); err != nil || target != "etc/os-release" {
		t.Errorf("symlink copied as %q, %v", target, err)
	}
	os.WriteFile(filepath.Join(m, "root", "etc", "mine"), []byte("x"), 0o644)
	if err := prepareRoot(ctx, o, base, m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m, "root", "etc", "mine")); err != nil {
		t.Error("a second prepare copied the tree again and lost the machine's files")
	}
}
