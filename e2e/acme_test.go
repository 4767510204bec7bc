package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	api, mgmt := net.JoinHostPort(bridge, fmt.Sprint(freePort(t))), net.JoinHostPort(bridge, fmt.Sprint(freePort(t)))
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": api, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "api.pem"), "privateKey": filepath.Join(dir, "api.key"),
		"httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"keyAlgorithm": "ecdsa",
	}})
	if err := os.WriteFile(filepath.Join(dir, "pebble.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	// The challenge server answers DNS only: every name is the host.
	startDaemon(t, dir, goBin(t, "pebble-challtestsrv"), "-defaultIPv4", h, "-defaultIPv6", "", "-dnsserver", dnsAddr,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	startDaemon(t, dir, goBin(t, "pebble"), "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dnsAddr)
	waitListening(t, api)

	const name = "acme.test"
	a := newApp(t, "acmeapp", 3400, hosts[:1], fmt.Sprintf(
		"proxy:\n  hosts: [%s]\n  tls: acme\n  acme_ca: https://%s/dir\n  acme_root: ca.pem\n  acme_email: ops@example.com\n", name, api))
	a.write(t, "ca.pem", string(caPEM))
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	// Pebble's issuing root, from its management API.
	api0 := x509.NewCertPool()
	api0.AppendCertsFromPEM(caPEM)
	mc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api0}}}
	resp, err := mc.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("Pebble's root: %q", rootPEM)
	}

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

// goBin finds a tool scripts/deps.sh installs with go install.
func goBin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
	if _, err := os.Stat(p); err != nil {
		msg := name + " is not installed (scripts/deps.sh installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// startDaemon runs bin for the rest of the test, logging to dir.
func startDaemon(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	logPath := filepath.Join(dir, filepath.Base(bin)+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", filepath.Base(bin), b)
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", addr)
}
