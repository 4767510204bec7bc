package host

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The proxy's issuer is chosen by the apps that serve TLS; the setup of
// an app without TLS keeps whatever another app chose.
func TestIssuerKeptAcrossApps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy", "issuer.json")
	steps := []struct {
		name string
		spec Spec
		want []string
	}{
		{"plain app, nothing chosen", Spec{App: "a"}, nil},
		{"internal CA chosen", Spec{App: "b", TLS: true, TLSInternal: true}, []string{"--tls-internal"}},
		{"plain app keeps it", Spec{App: "c"}, []string{"--tls-internal"}},
		{"acme app changes it", Spec{App: "d", TLS: true, ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir"},
			[]string{"--acme-email", "ops@example.com", "--acme-ca", "https://ca.test/dir"}},
		{"plain app again", Spec{App: "a"}, []string{"--acme-email", "ops@example.com", "--acme-ca", "https://ca.test/dir"}},
		{"private CA's roots", Spec{App: "e", TLS: true, ACMECA: "https://ca.test/dir", ACMERoots: "-----BEGIN CERTIFICATE-----"},
			[]string{"--acme-ca", "https://ca.test/dir", "--acme-root", ProxyACMERootsPath}},
	}
	for _, st := range steps {
		got, err := issuerFor(&st.spec, path)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, got.flags()); diff != "" {
			t.Errorf("%s: flags (-want +got):\n%s", st.name, diff)
		}
	}
}
