package host

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/proxy"
)

// The proxy's issuer is chosen by the apps that serve TLS; the setup of
// an app without TLS keeps whatever another app chose.
func TestIssuerKeptAcrossApps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy", "issuer.json")
	acme := certs.Issuer{ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir"}
	steps := []struct {
		name string
		spec Spec
		want certs.Issuer
	}{
		{"plain app, nothing chosen", Spec{App: "a"}, certs.Issuer{}},
		{"internal CA chosen", Spec{App: "b", TLS: true, TLSInternal: true}, certs.Issuer{Internal: true}},
		{"plain app keeps it", Spec{App: "c"}, certs.Issuer{Internal: true}},
		{"acme app changes it", Spec{App: "d", TLS: true, ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir"}, acme},
		{"plain app again", Spec{App: "a"}, acme},
		{"private CA's roots", Spec{App: "e", TLS: true, ACMECA: "https://ca.test/dir", ACMERoots: "-----BEGIN CERTIFICATE-----"},
			certs.Issuer{ACMECA: "https://ca.test/dir", ACMERoots: "-----BEGIN CERTIFICATE-----"}},
	}
	for _, st := range steps {
		got, err := issuerFor(&st.spec, path)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: issuer (-want +got):\n%s", st.name, diff)
		}
		// What the proxy reads back is what setup chose.
		read, err := certs.ReadIssuer(path)
		if err != nil || read != got {
			t.Errorf("%s: the proxy would read %+v, %v", st.name, read, err)
		}
	}
}

// setup upgrades the proxy when the process serving is not the binary
// on disk or runs with other issuer settings, and leaves it alone
// otherwise.
func TestProxyStale(t *testing.T) {
	dir := t.TempDir()
	procDir = filepath.Join(dir, "proc")
	defer func() { procDir = "/proc" }()
	running := filepath.Join(dir, "hoist.running")
	installed := filepath.Join(dir, "hoist")
	for _, p := range []string{running, installed} {
		if err := os.WriteFile(p, []byte(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const pid = 4242
	if err := os.MkdirAll(filepath.Join(procDir, strconv.Itoa(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(procDir, strconv.Itoa(pid), "exe")
	internal := certs.Issuer{Internal: true}
	tests := map[string]struct {
		exe    string // what /proc/PID/exe points to; "" for none
		issuer certs.Issuer
		want   string
	}{
		"current":             {installed, internal, ""},
		"binary replaced":     {running, internal, "a new hoist binary"},
		"process gone":        {"", internal, "a new hoist binary"},
		"issuer changed":      {installed, certs.Issuer{ACMECA: "https://ca.test/dir"}, "new issuer settings"},
		"both, binary first":  {running, certs.Issuer{}, "a new hoist binary"},
		"no issuer, none set": {installed, certs.Issuer{}, "new issuer settings"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			os.Remove(exe)
			if tt.exe != "" {
				if err := os.Symlink(tt.exe, exe); err != nil {
					t.Fatal(err)
				}
			}
			p := proxy.Process{PID: pid, Issuer: internal.Fingerprint()}
			if got := proxyStale(p, installed, tt.issuer); got != tt.want {
				t.Errorf("proxyStale = %q, want %q", got, tt.want)
			}
		})
	}
}
