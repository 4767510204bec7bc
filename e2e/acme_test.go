//go:build lab

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/pebbletest"
)

// TestACMEFromLabHost deploys an app with tls: acme to a lab host whose
// CA is Pebble, a real ACME server, listening on the lab's bridge behind
// a private CA that hoist.yml names as acme_root. The host's proxy gets a
// certificate by a real HTTP-01 challenge (Pebble connects to the host's
// port 80) and serves the app with it.
func TestACMEFromLabHost(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	addr := netip.MustParseAddr(h).As4()
	addr[3] = 1
	bridge := netip.AddrFrom4(addr).String()
	dir := t.TempDir()

	// The private CA that Pebble's API is served under.
	caPEM, certPEM, keyPEM := privateCA(t, bridge)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "api.pem": certPEM, "api.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Pebble listens on the bridge, validates challenges on the host's
	// ports 80 and 443, and resolves every name to the host.
	ca := pebbletest.Start(t, pebbletest.Options{
		Listen: bridge, HTTPPort: 80, TLSPort: 443, Resolve: h,
		APICert: filepath.Join(dir, "api.pem"), APIKey: filepath.Join(dir, "api.key"), APIRoots: filepath.Join(dir, "ca.pem"),
	})

	const name = "acme.test"
	a := newApp(t, "acmeapp", 3400, hosts[:1], fmt.Sprintf(
		"proxy:\n  hosts: [%s]\n  tls: acme\n  acme_ca: %s\n  acme_root: ca.pem\n  acme_email: ops@example.com\n", name, ca.Directory))
	a.write(t, "ca.pem", string(caPEM))
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	roots := ca.Roots(t)
	ans, leaf := getHTTPS(t, h, name, roots)
	if got := strings.TrimSpace(ans.body); got != "hello from release "+id {
		t.Errorf("over HTTPS: %q", got)
	}
	if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("certificate issued by %q, want Pebble", leaf.Issuer)
	}
}

// privateCA returns a CA and a certificate it signed for ip, as PEM.
func privateCA(t *testing.T, ip string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hoist e2e private CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		IPAddresses: []net.IP{net.ParseIP(ip)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
