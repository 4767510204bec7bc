//go:build integration

package proxy

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/bindtest"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/waittest"
)

// TestCopiesFollowRenewalAndTakeOver runs two proxies for one name with
// Pebble's short-lived certificates (45s), the copier with the default
// peer refresh of an hour. When the issuer renews, the copier serves the
// renewed certificate at once (the issuer tells it, or it asks at the
// copy's own renewal time), long before the first expires: with a fixed
// refresh it served it past its expiry. Then the issuer's host is
// stopped: at its copy's renewal time the copier finds no issuer,
// takes over, obtains the name itself and serves a certificate that
// outlives the copy.
func TestCopiesFollowRenewalAndTakeOver(t *testing.T) {
	bind := bindtest.Start(t, bindtest.Options{Zone: "hoist.test", Records: []string{"follow IN A 127.0.0.1"}})
	p := pebbletest.Start(t, pebbletest.Options{DNSServer: bind.Addr, Validity: 45 * time.Second})
	secret := make([]byte, 32)
	rand.Read(secret)
	peerSecret := base64.StdEncoding.EncodeToString(secret)
	const name = "follow.hoist.test"
	peerA := fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t))
	peerB := fmt.Sprintf("127.0.0.1:%d", pebbletest.FreePort(t))
	peers := []string{peerA, peerB}

	plansA, plansB := t.TempDir(), t.TempDir()
	writePlan(t, plansA, hostproto.CertPlan{App: "a", PeerSecret: peerSecret, Peers: peers, Self: peerA,
		Names: []hostproto.CertPlanName{{Name: name, Challenge: hostproto.ChallengeHTTP01, Peers: true}}})
	writePlan(t, plansB, hostproto.CertPlan{App: "a", PeerSecret: peerSecret, Peers: peers, Self: peerB,
		Names: []hostproto.CertPlanName{{Name: name, Challenge: hostproto.ChallengeHTTP01, From: peerA}}})
	// Both as on a host, but for timings shortened to fit the
	// certificates' life: renewal at half of it, looked at every second.
	// The copier keeps the default peer refresh of an hour.
	opts := func(plans, peer string) certs.Options {
		return certs.Options{CA: p.Directory, RootsFile: p.APIRoots, Storage: t.TempDir(), PlanDir: plans, PeerListen: peer,
			PeerRetry: 200 * time.Millisecond, HTTPPort: p.HTTPPort, TLSALPNPort: p.TLSPort,
			RenewalWindowRatio: 0.5, RenewCheckInterval: time.Second, DisableARI: true}
	}
	issuer, err := certs.New(opts(plansA, peerA))
	if err != nil {
		t.Fatal(err)
	}
	copier, err := certs.New(opts(plansB, peerB))
	if err != nil {
		t.Fatal(err)
	}
	// Pebble validates on the copier's HTTP port, which relays to the
	// issuer while it lives, and answers itself once it took over.
	r1 := startRun(t, issuer, pebbletest.FreePort(t), pebbletest.FreePort(t), true)
	r2 := startRun(t, copier, p.HTTPPort, pebbletest.FreePort(t), true)
	for _, r := range []*running{r1, r2} {
		b := backend(t, "a", true)
		if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", b.addr(), name)); err != nil {
			t.Fatal(err)
		}
	}
	roots := p.Roots(t)
	_, _, first := waitHTTPS(t, r1.httpsPort, name, roots, 90*time.Second)
	copied := waitServed(t, r2, name, roots, first.NotAfter, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) == 0 })
	t.Logf("first certificate %s until %s, copied at %s", first.SerialNumber, first.NotAfter.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))

	// The issuer renews halfway; the copy follows before the first
	// certificate expires.
	renewed := waitServed(t, r2, name, roots, first.NotAfter, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(copied.SerialNumber) != 0 })
	if mine, err := servedCert(r1.httpsPort, name, roots); err != nil || mine.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("the copier serves %s, the issuer %v (%v)", renewed.SerialNumber, mine, err)
	}
	t.Logf("renewed certificate %s until %s, followed at %s", renewed.SerialNumber, renewed.NotAfter.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))

	// The issuer's host goes: the copier takes over before its copy
	// expires, and serves a certificate of its own.
	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}
	orders := p.OrdersFor(t, name)
	own := waitServed(t, r2, name, roots, renewed.NotAfter, func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(renewed.SerialNumber) != 0 })
	if !own.NotAfter.After(renewed.NotAfter) {
		t.Errorf("after the issuer stopped, the copier serves a certificate until %s, the copy was until %s", own.NotAfter, renewed.NotAfter)
	}
	if n := p.OrdersFor(t, name); n != orders+1 {
		t.Errorf("Pebble took %d orders for %s once the issuer stopped, want 1", n-orders, name)
	}
	st, err := r2.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := st[0].Certificates[name]; c.ObtainedBy != "http-01" || c.Error != "" {
		t.Errorf("the copier's status after taking over: %+v, want obtained by http-01 here", c)
	}
	t.Logf("own certificate %s until %s, at %s", own.SerialNumber, own.NotAfter.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))
}

// waitServed waits, until before, for r to serve name a certificate
// that ok accepts and that verifies against roots now.
func waitServed(t *testing.T, r *running, name string, roots *x509.CertPool, before time.Time, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	var c *x509.Certificate
	var last error
	if !waittest.PollEvery(time.Until(before), 200*time.Millisecond, func() bool {
		c, last = servedCert(r.httpsPort, name, roots)
		return last == nil && ok(c)
	}) {
		t.Fatalf("no new certificate for %s served before %s (the one served expires then): %v", name, before.Format(time.TimeOnly), last)
	}
	return c
}
