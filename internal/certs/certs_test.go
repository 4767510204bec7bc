package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/dns"
)

func secret(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func writePlan(t *testing.T, dir string, p Plan) {
	t.Helper()
	b, _ := json.Marshal(p)
	if err := os.WriteFile(PlanPath(dir, p.App), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPeerChannel: only a peer holding the app's secret gets through,
// and only for the names this host obtains for that app.
func TestPeerChannel(t *testing.T) {
	plans := t.TempDir()
	s := secret(t)
	writePlan(t, plans, Plan{App: "shop", PeerSecret: s, Names: []PlanName{
		{Name: "www.shop.test", Challenge: HTTP01, Peers: true},
		{Name: "api.shop.test", Challenge: HTTP01, From: "10.0.0.9:9443"},
	}})
	m, err := New(Options{Storage: t.TempDir(), PlanDir: plans, CA: "https://127.0.0.1:1/dir"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go m.servePeers(ln)
	addr := ln.Addr().String()
	tests := map[string]struct {
		app, secret, path string
		want              string // in the error
	}{
		"right secret, no certificate yet": {"shop", s, certPath("www.shop.test"), "404 Not Found: no certificate for www.shop.test yet"},
		"a name another host obtains":      {"shop", s, certPath("api.shop.test"), "this host does not obtain that name"},
		"a name of no plan":                {"shop", s, certPath("blog.test"), "this host does not obtain that name"},
		"no such challenge":                {"shop", s, challengePath("www.shop.test", "tok"), "no such challenge"},
		"wrong secret":                     {"shop", secret(t), certPath("www.shop.test"), "the peer does not hold the app's peer secret"},
		"another app":                      {"blog", s, certPath("www.shop.test"), "tls"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := peerGet(context.Background(), addr, tt.app, tt.secret, tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPeerIdentityIsTheSecrets: the same secret and app make the same
// key; another secret or app another.
func TestPeerIdentityIsTheSecrets(t *testing.T) {
	s := secret(t)
	_, a, _ := peerIdentity("shop", s)
	_, b, _ := peerIdentity("shop", s)
	_, c, _ := peerIdentity("blog", s)
	_, d, _ := peerIdentity("shop", secret(t))
	if !a.Equal(b) || a.Equal(c) || a.Equal(d) {
		t.Error("peer keys do not follow app and secret")
	}
	if _, _, err := peerIdentity("shop", "c2hvcnQ="); err == nil {
		t.Error("a 5-byte secret was taken")
	}
}

func TestCheckCopy(t *testing.T) {
	now := time.Now()
	good := selfSigned(t, "www.shop.test", now.Add(time.Hour))
	other := selfSigned(t, "www.shop.test", now.Add(time.Hour))
	tests := map[string]struct {
		pc   peerCert
		want string // "" valid
	}{
		"valid":               {good, ""},
		"another name":        {selfSigned(t, "evil.test", now.Add(time.Hour)), "the certificate is for evil.test, not www.shop.test"},
		"expired":             {selfSigned(t, "www.shop.test", now.Add(-time.Minute)), "expired"},
		"key of another cert": {peerCert{Chain: good.Chain, Key: other.Key}, "private key does not match public key"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := checkCopy("www.shop.test", tt.pc)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func selfSigned(t *testing.T, name string, notAfter time.Time) peerCert {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notAfter.Add(-2 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return peerCert{Chain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		Key: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))}
}

func TestPlanValidate(t *testing.T) {
	dnsPlan := &DNSPlan{Provider: "rfc2136", Zone: "shop.test", Credentials: dns.Credentials{"server": "127.0.0.1:53"}}
	tests := map[string]struct {
		p    Plan
		want string
	}{
		"valid":              {Plan{App: "shop", DNS: dnsPlan, Names: []PlanName{{Name: "*.shop.test", Challenge: DNS01}}}, ""},
		"bad app":            {Plan{App: "../x"}, "invalid app"},
		"unknown challenge":  {Plan{App: "shop", Names: []PlanName{{Name: "a", Challenge: "tls-alpn-01"}}}, `unknown challenge "tls-alpn-01"`},
		"dns-01 without dns": {Plan{App: "shop", Names: []PlanName{{Name: "a", Challenge: DNS01}}}, "needs DNS-01 and no DNS provider"},
		"copy without secret": {Plan{App: "shop", Names: []PlanName{{Name: "a", Challenge: HTTP01, From: "10.0.0.1:9443"}}},
			"without a peer secret"},
		"unknown provider": {Plan{App: "shop", DNS: &DNSPlan{Provider: "bind"}}, `unknown DNS provider "bind"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.p.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPlansOfTwoApps: a name two apps plan is the first app's; a broken
// plan is reported and the others still load.
func TestPlansOfTwoApps(t *testing.T) {
	dir := t.TempDir()
	writePlan(t, dir, Plan{App: "alpha", Names: []PlanName{{Name: "shared.test", Challenge: HTTP01}}})
	writePlan(t, dir, Plan{App: "beta", Names: []PlanName{{Name: "shared.test", Challenge: HTTP01}, {Name: "beta.test", Challenge: HTTP01}}})
	os.WriteFile(PlanPath(dir, "gamma"), []byte("{"), 0o600)
	ps, err := loadPlans(dir)
	if err == nil || !strings.Contains(err.Error(), "gamma.json") {
		t.Errorf("error = %v, want one naming gamma.json", err)
	}
	got := fmt.Sprint(ps.byName["shared.test"].plan.App, " ", ps.byName["beta.test"].plan.App, " ", len(ps.byApp))
	if got != "alpha beta 2" {
		t.Errorf("plans: %s", got)
	}
}

// TestConfigForEachWay: a name is renewed by the config of its plan; a
// copy (even of a DNS-01 name, whose credentials only the issuer holds)
// by none that would obtain it.
func TestConfigForEachWay(t *testing.T) {
	plans := t.TempDir()
	s := secret(t)
	writePlan(t, plans, Plan{App: "shop", PeerSecret: s, DNS: &DNSPlan{Provider: "rfc2136", Zone: "shop.test", Credentials: dns.Credentials{"server": "127.0.0.1:53"}},
		Names: []PlanName{{Name: "*.shop.test", Challenge: DNS01, Peers: true}, {Name: "www.shop.test", Challenge: HTTP01, Peers: true}}})
	writePlan(t, plans, Plan{App: "blog", PeerSecret: s, Names: []PlanName{{Name: "*.blog.test", Challenge: DNS01, From: "10.0.0.2:9443"}}})
	m, err := New(Options{Storage: t.TempDir(), PlanDir: plans, CA: "https://127.0.0.1:1/dir"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.refresh(nil)
	dnsCfg := m.configFor([]string{"*.shop.test"})
	if dnsCfg == m.http || dnsCfg == m.httpOnly {
		t.Error("a DNS-01 name is renewed by an HTTP config")
	}
	if got := m.configFor([]string{"www.shop.test"}); got != m.httpOnly {
		t.Error("a name others copy is not renewed by HTTP-01 alone")
	}
	if got := m.configFor([]string{"*.blog.test"}); got != m.http {
		t.Error("a copied name got a config that would obtain it")
	}
	if got := m.configFor([]string{"other.test"}); got != m.http {
		t.Error("a name of no plan is not obtained by HTTP-01 or TLS-ALPN-01")
	}
}
