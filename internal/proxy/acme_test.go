//go:build integration

package proxy

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/waittest"
)

// TestACMEChallenges obtains a certificate from Pebble by each challenge
// type and serves HTTPS with it, the chain verified against Pebble's
// root; plain HTTP is redirected.
func TestACMEChallenges(t *testing.T) {
	p := pebbletest.Start(t, pebbletest.Options{})
	tests := map[string]struct{ noHTTP, noALPN bool }{
		"http-01":     {noHTTP: false, noALPN: true},
		"tls-alpn-01": {noHTTP: true, noALPN: false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cm, err := certs.New(certs.Options{
				CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(), Email: "ops@hoist.test",
				HTTPPort: p.HTTPPort, TLSALPNPort: p.TLSPort, DisableHTTP01: tt.noHTTP, DisableTLSALPN01: tt.noALPN,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := startRun(t, cm, p.HTTPPort, p.TLSPort, true)
			host := strings.ReplaceAll(name, "-", "") + ".hoist.test"
			a := backend(t, "a", true)
			if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", a.addr(), host)); err != nil {
				t.Fatal(err)
			}
			roots := p.Roots(t)
			resp, body, leaf := waitHTTPS(t, r.httpsPort, host, roots, 60*time.Second)
			checkServing(t, r, host, name, roots, resp, body)
			if time.Until(leaf.NotAfter) < 24*time.Hour || leaf.DNSNames[0] != host {
				t.Errorf("certificate for %v until %s", leaf.DNSNames, leaf.NotAfter)
			}
		})
	}
}

// TestACMERenewal gets a short-lived certificate from Pebble and checks
// that a renewed, different one is served before the first expires.
func TestACMERenewal(t *testing.T) {
	p := pebbletest.Start(t, pebbletest.Options{Validity: 30 * time.Second})
	cm, err := certs.New(certs.Options{
		CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(),
		HTTPPort: p.HTTPPort, TLSALPNPort: p.TLSPort,
		// Renew with 5/6 of the life left: 5s after issue.
		RenewalWindowRatio: 5.0 / 6, RenewCheckInterval: time.Second, DisableARI: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cm, p.HTTPPort, p.TLSPort, true)
	host := "renew.hoist.test"
	a := backend(t, "a", true)
	if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", a.addr(), host)); err != nil {
		t.Fatal(err)
	}
	roots := p.Roots(t)
	_, _, first := waitHTTPS(t, r.httpsPort, host, roots, 60*time.Second)
	if life := first.NotAfter.Sub(first.NotBefore); life > time.Minute {
		t.Fatalf("certificate lives %s; Pebble ignored the short profile", life)
	}
	var c *x509.Certificate
	if !waittest.PollEvery(40*time.Second, 500*time.Millisecond, func() bool {
		var err error
		c, err = servedCert(r.httpsPort, host, roots)
		return err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
	}) {
		t.Fatalf("no renewed certificate within 40s (first expires %s)", first.NotAfter)
	}
	if !c.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after the first's %s", c.NotAfter, first.NotAfter)
	}
	if time.Now().After(first.NotAfter) {
		t.Errorf("renewed only after the first certificate expired")
	}
}
