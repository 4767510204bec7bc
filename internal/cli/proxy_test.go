package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/certs"
)

// The proxy takes its issuer from the file setup writes, or from flags
// given by hand, never from both.
func TestProxyIssuer(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "issuer.json")
	os.WriteFile(file, []byte(`{"acme_ca":"https://ca.test/dir %41","acme_email":"ops@example.com"}`), 0o644)
	roots := filepath.Join(dir, "roots.pem")
	os.WriteFile(roots, []byte("PEM"), 0o644)
	tests := map[string]struct {
		o       proxyOptions
		want    certs.Issuer
		wantErr string
	}{
		"file":             {proxyOptions{issuer: file}, certs.Issuer{ACMECA: "https://ca.test/dir %41", ACMEEmail: "ops@example.com"}, ""},
		"no file yet":      {proxyOptions{issuer: filepath.Join(dir, "none.json")}, certs.Issuer{}, ""},
		"flags":            {proxyOptions{tlsInternal: true}, certs.Issuer{Internal: true}, ""},
		"roots flag":       {proxyOptions{acmeCA: "https://ca.test/dir", acmeRoots: roots}, certs.Issuer{ACMECA: "https://ca.test/dir", ACMERoots: "PEM"}, ""},
		"file and flags":   {proxyOptions{issuer: file, tlsInternal: true}, certs.Issuer{}, "--issuer names the issuer already"},
		"internal and CA":  {proxyOptions{tlsInternal: true, acmeCA: "https://ca.test/dir"}, certs.Issuer{}, "takes no ACME CA"},
		"roots file gone":  {proxyOptions{acmeRoots: filepath.Join(dir, "gone.pem")}, certs.Issuer{}, "--acme-root"},
		"no issuer at all": {proxyOptions{}, certs.Issuer{}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := proxyIssuer(&tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("proxyIssuer: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("proxyIssuer = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
