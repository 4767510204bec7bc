//go:build integration

package proxy

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/bindtest"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/waittest"
)

func writePlan(t *testing.T, dir string, p hostproto.CertPlan) {
	t.Helper()
	b, _ := json.Marshal(p)
	if err := os.WriteFile(certs.PlanPath(dir, p.App), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func bindCredentials(s *bindtest.Server) dns.Credentials {
	return dns.Credentials{"server": s.Addr, "key_name": s.KeyName, "key_alg": s.KeyAlg, "key": s.Key}
}

// TestDNS01Wildcard gets a wildcard certificate from Pebble by DNS-01:
// the proxy sets the challenge's TXT record in bind9 through RFC 2136,
// Pebble checks it there, and the proxy serves the certificate for any
// name under the wildcard and reports how it got it.
func TestDNS01Wildcard(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Zone: "hoist.test"})
	p := pebbletest.Start(t, pebbletest.Options{DNSServer: bind.Addr})
	plans := t.TempDir()
	const name = "*.apps.hoist.test"
	writePlan(t, plans, hostproto.CertPlan{App: "a", Names: []hostproto.CertPlanName{{Name: name, Challenge: hostproto.ChallengeDNS01}},
		DNS: &hostproto.DNSPlan{Provider: "rfc2136", Zone: "hoist.test", Credentials: bindCredentials(bind), Resolvers: []string{bind.Addr}}})
	cm, err := certs.New(certs.Options{CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(), PlanDir: plans,
		HTTPPort: p.HTTPPort, TLSALPNPort: p.TLSPort})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cm, pebbletest.FreePort(t), pebbletest.FreePort(t), true)
	a := backend(t, "a", true)
	if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", a.addr(), name)); err != nil {
		t.Fatal(err)
	}
	roots := p.Roots(t)
	_, body, leaf := waitHTTPS(t, r.httpsPort, "anything.apps.hoist.test", roots, 90*time.Second)
	if !strings.HasPrefix(body, "a ") || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name {
		t.Errorf("served %q with a certificate for %v", body, leaf.DNSNames)
	}
	st, err := r.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := st[0].Certificates[name]
	if c.ObtainedBy != "dns-01" || !strings.Contains(c.Issuer, "Pebble") || !c.RenewAt.After(time.Now()) || !c.RenewAt.Before(c.Expires) {
		t.Errorf("status of %s: %+v", name, c)
	}
	if n, forName := p.Orders(t), p.OrdersFor(t, name); n != 1 || forName != 1 {
		t.Errorf("Pebble took %d orders (%d for %s), want 1", n, forName, name)
	}
	// The challenge's record is gone once the certificate is in.
	var txt []string
	if !waittest.PollEvery(10*time.Second, 100*time.Millisecond, func() bool {
		txt = bind.Query(t, "_acme-challenge.apps", mdns.TypeTXT)
		return len(txt) == 0
	}) {
		t.Fatalf("_acme-challenge.apps TXT still set after 10s: %v", txt)
	}
}

// TestOneOrderForTwoHosts runs two proxies for one name: the first
// obtains its certificate, the second copies it over the peer channel.
// Pebble reaches only the second for the HTTP-01 challenge (the name
// resolves to it), which answers with the first's key authorization.
// Both serve the same certificate after one order; when the first
// renews it, the second follows, one order more.
func TestOneOrderForTwoHosts(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Zone: "hoist.test", Records: []string{"shared IN A 127.0.0.1"}})
	p := pebbletest.Start(t, pebbletest.Options{DNSServer: bind.Addr, Validity: 40 * time.Second})
	secret := make([]byte, 32)
	rand.Read(secret)
	peerSecret := base64.StdEncoding.EncodeToString(secret)
	const name = "shared.hoist.test"
	peer := fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t))

	issuerPlans, copierPlans := t.TempDir(), t.TempDir()
	writePlan(t, issuerPlans, hostproto.CertPlan{App: "a", PeerSecret: peerSecret, Names: []hostproto.CertPlanName{{Name: name, Challenge: hostproto.ChallengeHTTP01, Peers: true}}})
	writePlan(t, copierPlans, hostproto.CertPlan{App: "a", PeerSecret: peerSecret, Names: []hostproto.CertPlanName{{Name: name, Challenge: hostproto.ChallengeHTTP01, From: peer}}})
	issuer, err := certs.New(certs.Options{CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(), PlanDir: issuerPlans,
		PeerListen: peer, PeerRetry: 200 * time.Millisecond, HTTPPort: p.HTTPPort, TLSALPNPort: p.TLSPort,
		RenewalWindowRatio: 0.5, RenewCheckInterval: time.Second, DisableARI: true})
	if err != nil {
		t.Fatal(err)
	}
	copier, err := certs.New(certs.Options{CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(), PlanDir: copierPlans,
		PeerRetry: 200 * time.Millisecond, PeerRefresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Pebble validates on its HTTP port: the copier's. The copier has
	// no route for the name yet when the CA asks it, as when a deploy
	// reaches the issuer first: the plan is enough to relay.
	r1 := startRun(t, issuer, pebbletest.FreePort(t), pebbletest.FreePort(t), true)
	r2 := startRun(t, copier, p.HTTPPort, pebbletest.FreePort(t), true)
	setRoute := func(r *running) {
		b := backend(t, "a", true)
		if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", b.addr(), name)); err != nil {
			t.Fatal(err)
		}
	}
	setRoute(r1)
	roots := p.Roots(t)
	_, _, first := waitHTTPS(t, r1.httpsPort, name, roots, 90*time.Second)
	setRoute(r2)
	_, _, copied := waitHTTPS(t, r2.httpsPort, name, roots, 30*time.Second)
	if first.SerialNumber.Cmp(copied.SerialNumber) != 0 {
		t.Errorf("the hosts serve different certificates: %s and %s", first.SerialNumber, copied.SerialNumber)
	}
	if n, forName := p.Orders(t), p.OrdersFor(t, name); n != 1 || forName != 1 {
		t.Errorf("Pebble took %d orders (%d for %s) for one name on two hosts, want 1", n, forName, name)
	}
	st, err := r2.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := st[0].Certificates[name]; c.From != peer || c.ObtainedBy != "copied from "+peer+" (http-01, answered by a peer there)" {
		t.Errorf("the copier's status: %+v", c)
	}

	// Renewal: the issuer renews halfway through the certificate's 40s;
	// the copier serves the new one before the first expires.
	var c *x509.Certificate
	if !waittest.PollEvery(60*time.Second, 250*time.Millisecond, func() bool {
		var err error
		c, err = servedCert(r2.httpsPort, name, roots)
		return err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
	}) {
		t.Fatalf("the copier serves no renewed certificate within 60s (the first expires %s)", first.NotAfter)
	}
	if !c.NotAfter.After(first.NotAfter) || time.Now().After(first.NotAfter) {
		t.Errorf("renewed copy until %s; the first until %s", c.NotAfter, first.NotAfter)
	}
	if n := p.Orders(t); n != 2 {
		t.Errorf("Pebble took %d orders after one renewal, want 2", n)
	}
}
