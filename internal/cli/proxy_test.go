package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// TestProxyStatusCertificates prints, per host and name, the issuer,
// expiry, how the certificate was obtained and when renewal is due, or
// why it is still pending.
func TestProxyStatusCertificates(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	got := hostproto.CertStatus{Issuer: "R11", Expires: now.Add(90 * 24 * time.Hour), ObtainedBy: "dns-01", ObtainedAt: now,
		RenewAt: now.Add(60 * 24 * time.Hour)}
	copied := got
	copied.ObtainedBy, copied.From = "copied from 10.0.0.2:9443 (dns-01 there)", "10.0.0.2:9443"
	route := func(c map[string]hostproto.CertStatus) hostproto.RouteStatus {
		return hostproto.RouteStatus{Route: hostproto.Route{App: "shop", Hosts: []string{"shop.test", "*.shop.test"}, Upstream: "127.0.0.1:3000", TLS: true},
			Healthy: true, Certificates: c}
	}
	out := []hostProxy{
		{Host: "10.0.0.2", Routes: []hostproto.RouteStatus{route(map[string]hostproto.CertStatus{"shop.test": got, "*.shop.test": got})}},
		{Host: "10.0.0.3", Routes: []hostproto.RouteStatus{route(map[string]hostproto.CertStatus{"shop.test": copied, "*.shop.test": {Error: "peer 10.0.0.2:9443: connection refused"}})}},
	}
	var b bytes.Buffer
	printProxyStatus(&streams{out: &b}, out, now)
	want := `HOST      APP   HOSTS                  UPSTREAM        HEALTHY  IN FLIGHT  WEBSOCKETS  TLS
10.0.0.2  shop  shop.test,*.shop.test  127.0.0.1:3000  yes      0          0           yes
10.0.0.3  shop  shop.test,*.shop.test  127.0.0.1:3000  yes      0          0           yes

HOST      NAME         ISSUER  EXPIRES           OBTAINED                                                    RENEWAL DUE
10.0.0.2  shop.test    R11     2027-02-23 (90d)  dns-01, 2026-11-25 12:00                                    2027-01-24 (60d)
10.0.0.2  *.shop.test  R11     2027-02-23 (90d)  dns-01, 2026-11-25 12:00                                    2027-01-24 (60d)
10.0.0.3  shop.test    R11     2027-02-23 (90d)  copied from 10.0.0.2:9443 (dns-01 there), 2026-11-25 12:00  2027-01-24 (60d)
10.0.0.3  *.shop.test  -       -                 pending: peer 10.0.0.2:9443: connection refused             -
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("proxy status (-want +got):\n%s", diff)
	}
}

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
