package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/hostproto"
)

func secret(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func writePlan(t *testing.T, dir string, p hostproto.CertPlan) {
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
	writePlan(t, plans, hostproto.CertPlan{App: "shop", PeerSecret: s, Names: []hostproto.CertPlanName{
		{Name: "www.shop.test", Challenge: hostproto.ChallengeHTTP01, Peers: true},
		{Name: "api.shop.test", Challenge: hostproto.ChallengeHTTP01, From: "10.0.0.9:9443"},
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
		"wrong secret":                     {"shop", secret(t), certPath("www.shop.test"), "tls: bad certificate"},
		"another app":                      {"blog", s, certPath("www.shop.test"), "tls: bad certificate"},
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

// TestPeerChannelListensWherePeersDial: the issuer listens on the
// addresses its plan names that are its own, never on every interface
// (it listened on :9443), and follows the plan when it changes.
func TestPeerChannelListensWherePeersDial(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	plans := t.TempDir()
	s := secret(t)
	plan := hostproto.CertPlan{App: "shop", PeerSecret: s, Names: []hostproto.CertPlanName{{Name: "www.shop.test", Challenge: hostproto.ChallengeHTTP01, Peers: true}},
		Listen: []string{"192.0.2.1:9443", addr}} // the first is behind a NAT: not this host's
	writePlan(t, plans, plan)
	m, err := New(Options{Storage: t.TempDir(), PlanDir: plans, CA: "https://127.0.0.1:1/dir", PeerRetry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.mu.Lock()
	m.reloadLocked()
	m.mu.Unlock()
	m.listenPeers() // as the loop does; again is a no-op
	if got := m.peerAddrs(); !slices.Equal(got, []string{addr}) {
		t.Fatalf("the peer channel listens on %v, want only %s", got, addr)
	}
	if _, err := peerGet(context.Background(), addr, "shop", s, certPath("www.shop.test")); err == nil || !strings.Contains(err.Error(), "no certificate for www.shop.test yet") {
		t.Errorf("a peer at %s: %v, want the issuer's answer", addr, err)
	}
	plan.Listen = nil
	writePlan(t, plans, plan)
	m.mu.Lock()
	m.reloadLocked()
	m.mu.Unlock()
	m.listenPeers()
	if got := m.peerAddrs(); len(got) != 0 {
		t.Errorf("a plan that names no address: the channel listens on %v", got)
	}
}

// TestPeerGetWantsTheIssuersProof: a copier takes nothing from a
// server that does not prove it holds the secret, though it completes
// the handshake with any client (an impostor at the issuer's address).
func TestPeerGetWantsTheIssuersProof(t *testing.T) {
	ends, err := newPeerEnds()
	if err != nil {
		t.Fatal(err)
	}
	s := secret(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ends.cert}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	proofs := map[string]func(*http.Request) string{
		"none":           func(*http.Request) string { return "" },
		"another secret": func(r *http.Request) string { p, _ := peerProof("shop", secret(t), r.TLS); return p },
		"another app":    func(r *http.Request) string { p, _ := peerProof("blog", s, r.TLS); return p },
		"forged":         func(*http.Request) string { return forged },
	}
	var current func(*http.Request) string
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(peerProofHeader, current(r))
		io.WriteString(w, `{"chain":"forged"}`)
	}))
	for name, proof := range proofs {
		current = proof
		if _, err := peerGet(context.Background(), ln.Addr().String(), "shop", s, certPath("www.shop.test")); err == nil || !strings.Contains(err.Error(), "does not hold the app's peer secret") {
			t.Errorf("%s: error = %v, want the issuer refused", name, err)
		}
	}
}

// forged is a proof of the right shape made without the secret.
var forged = base64.StdEncoding.EncodeToString(make([]byte, 32))

// TestPeerChannelTellsStrangersNothing: a client without the app's
// secret sees the same handshake and the same refusal whatever app it
// names (the issuer answered an app it does not serve with a failed
// handshake, one it serves with that app's certificate).
func TestPeerChannelTellsStrangersNothing(t *testing.T) {
	plans := t.TempDir()
	writePlan(t, plans, hostproto.CertPlan{App: "shop", PeerSecret: secret(t), Names: []hostproto.CertPlanName{{Name: "www.shop.test", Challenge: hostproto.ChallengeHTTP01, Peers: true}}})
	m, err := New(Options{Storage: t.TempDir(), PlanDir: plans, CA: "https://127.0.0.1:1/dir", PeerListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go m.servePeers(ln)
	stranger, _, err := peerIdentity("shop", secret(t)) // the app's name, another secret
	if err != nil {
		t.Fatal(err)
	}
	// probe is what a stranger learns: the certificate it is shown, and
	// how its request fails.
	probe := func(sni string, cert []tls.Certificate) string {
		conf := &tls.Config{ServerName: sni, InsecureSkipVerify: true, Certificates: cert, MinVersion: tls.VersionTLS13}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), conf)
		if err != nil {
			return "handshake: " + err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		shown := fmt.Sprintf("%x", sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", certPath("www.shop.test"))
		b, err := io.ReadAll(c)
		return fmt.Sprintf("shown %s, answered %q, %v", shown, b, err)
	}
	for _, cert := range [][]tls.Certificate{nil, {stranger}} {
		served := probe(peerSNI("shop"), cert)
		if strings.Contains(served, "200 OK") || strings.Contains(served, "404") {
			t.Errorf("a stranger was answered: %s", served)
		}
		for _, sni := range []string{peerSNI("blog"), "shop", ""} {
			if got := probe(sni, cert); got != served {
				t.Errorf("a stranger (with %d certificates) tells %q from the app served here:\n%s\n%s", len(cert), sni, served, got)
			}
		}
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
	dnsPlan := &hostproto.DNSPlan{Provider: "rfc2136", Zone: "shop.test", Credentials: dns.Credentials{"server": "127.0.0.1:53"}}
	tests := map[string]struct {
		p    hostproto.CertPlan
		want string
	}{
		"valid":              {hostproto.CertPlan{App: "shop", DNS: dnsPlan, Names: []hostproto.CertPlanName{{Name: "*.shop.test", Challenge: hostproto.ChallengeDNS01}}}, ""},
		"bad app":            {hostproto.CertPlan{App: "../x"}, "invalid app"},
		"unknown challenge":  {hostproto.CertPlan{App: "shop", Names: []hostproto.CertPlanName{{Name: "a", Challenge: "tls-alpn-01"}}}, `unknown challenge "tls-alpn-01"`},
		"dns-01 without dns": {hostproto.CertPlan{App: "shop", Names: []hostproto.CertPlanName{{Name: "a", Challenge: hostproto.ChallengeDNS01}}}, "needs DNS-01 and no DNS provider"},
		"copy without secret": {hostproto.CertPlan{App: "shop", Names: []hostproto.CertPlanName{{Name: "a", Challenge: hostproto.ChallengeHTTP01, From: "10.0.0.1:9443"}}},
			"without a peer secret"},
		"unknown provider": {hostproto.CertPlan{App: "shop", DNS: &hostproto.DNSPlan{Provider: "bind"}}, `unknown DNS provider "bind"`},
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
	writePlan(t, dir, hostproto.CertPlan{App: "alpha", Names: []hostproto.CertPlanName{{Name: "shared.test", Challenge: hostproto.ChallengeHTTP01}}})
	writePlan(t, dir, hostproto.CertPlan{App: "beta", Names: []hostproto.CertPlanName{{Name: "shared.test", Challenge: hostproto.ChallengeHTTP01}, {Name: "beta.test", Challenge: hostproto.ChallengeHTTP01}}})
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
	writePlan(t, plans, hostproto.CertPlan{App: "shop", PeerSecret: s, DNS: &hostproto.DNSPlan{Provider: "rfc2136", Zone: "shop.test", Credentials: dns.Credentials{"server": "127.0.0.1:53"}},
		Names: []hostproto.CertPlanName{{Name: "*.shop.test", Challenge: hostproto.ChallengeDNS01, Peers: true}, {Name: "www.shop.test", Challenge: hostproto.ChallengeHTTP01, Peers: true}}})
	writePlan(t, plans, hostproto.CertPlan{App: "blog", PeerSecret: s, Names: []hostproto.CertPlanName{{Name: "*.blog.test", Challenge: hostproto.ChallengeDNS01, From: "10.0.0.2:9443"}}})
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
