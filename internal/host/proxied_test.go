package host

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy"
)

// The proxy's issuer is chosen by the apps that serve TLS; the setup of
// an app without TLS keeps whatever another app chose.
func TestIssuerKeptAcrossApps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy", "issuer.json")
	acme := certs.Issuer{ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir"}
	steps := []struct {
		name string
		spec hostproto.Spec
		want certs.Issuer
	}{
		{"plain app, nothing chosen", hostproto.Spec{App: "a"}, certs.Issuer{}},
		{"internal CA chosen", hostproto.Spec{App: "b", TLS: true, TLSInternal: true}, certs.Issuer{Internal: true}},
		{"plain app keeps it", hostproto.Spec{App: "c"}, certs.Issuer{Internal: true}},
		{"acme app changes it", hostproto.Spec{App: "d", TLS: true, ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir"}, acme},
		{"plain app again", hostproto.Spec{App: "a"}, acme},
		{"private CA's roots", hostproto.Spec{App: "e", TLS: true, ACMECA: "https://ca.test/dir", ACMERoots: "-----BEGIN CERTIFICATE-----"},
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

// The proxy trusts the X-Forwarded-* of the networks any app of the
// host lists, each once; an app that lists none leaves the others'. A
// balancer's network is trusted as a balancer, with less, even where
// another app lists it as a proxy.
func TestTrustedProxiesAcrossApps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trusted")
	steps := []struct {
		spec hostproto.Spec
		want trusted
	}{
		{hostproto.Spec{App: "a"}, trusted{}},
		{hostproto.Spec{App: "a", TrustedProxies: []string{"10.77.0.0/16"}}, trusted{proxies: []string{"10.77.0.0/16"}}},
		{hostproto.Spec{App: "b", TrustedProxies: []string{"10.77.0.0/16", "173.245.48.0/20"}}, trusted{proxies: []string{"10.77.0.0/16", "173.245.48.0/20"}}},
		{hostproto.Spec{App: "c"}, trusted{proxies: []string{"10.77.0.0/16", "173.245.48.0/20"}}},
		{hostproto.Spec{App: "b"}, trusted{proxies: []string{"10.77.0.0/16"}}},
		{hostproto.Spec{App: "e", TrustedProxies: []string{"173.245.48.0/20"}, TrustedBalancers: []string{"10.77.0.0/16"}},
			trusted{proxies: []string{"173.245.48.0/20"}, balancers: []string{"10.77.0.0/16"}}},
	}
	for i, st := range steps {
		got, err := trustedProxies(dir, &st.spec)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if diff := cmp.Diff(st.want, got, cmp.AllowUnexported(trusted{})); diff != "" {
			t.Errorf("step %d (%s): trusted (-want +got):\n%s", i, st.spec.App, diff)
		}
	}
	for _, s := range []hostproto.Spec{{App: "d", TrustedProxies: []string{"0.0.0.0/0"}}, {App: "d", TrustedBalancers: []string{"0.0.0.0/0"}}} {
		if _, err := trustedProxies(dir, &s); err == nil {
			t.Errorf("every address was taken as trusted: %+v", s)
		}
	}
	unit, err := proxyUnit(trusted{proxies: []string{"10.77.0.0/16", "173.245.48.0/20"}, balancers: []string{"10.78.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "--trusted-proxy 10.77.0.0/16 --trusted-proxy 173.245.48.0/20 --trusted-balancer 10.78.0.0/16") {
		t.Errorf("the proxy's unit does not pass the trusted proxies and balancers:\n%s", unit)
	}
}
