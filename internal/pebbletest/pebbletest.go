// Package pebbletest starts Pebble, Let's Encrypt's ACME test server,
// with pebble-challtestsrv as its DNS, for tests that need a real ACME
// CA: the proxy's certificate tests on loopback, and the end-to-end test
// that has a lab host get a certificate. Both binaries are installed by
// scripts/deps.sh (go install ...@v2.10.1); under CI=true a missing one
// fails the test instead of skipping it.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// Version is the Pebble release the tests run.
const Version = "v2.10.1"

// Options configure a Pebble.
type Options struct {
	// Listen is the address Pebble's API and management listen on
	// (default 127.0.0.1).
	Listen string
	// HTTPPort and TLSPort are where Pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges (default: free loopback ports).
	HTTPPort, TLSPort int
	// Resolve is the IPv4 address every name resolves to (default
	// 127.0.0.1), through pebble-challtestsrv.
	Resolve string
	// DNSServer, when set, is the DNS server (host:port) Pebble resolves
	// names and checks DNS-01 records with, instead of challtestsrv:
	// bind9 in the DNS tests.
	DNSServer string
	// Validity is the life of the certificates Pebble issues (0: its
	// default).
	Validity time.Duration
	// APICert and APIKey are PEM files Pebble's API is served with, and
	// APIRoots the PEM file that trusts them; default Pebble's own test
	// certificate for localhost.
	APICert, APIKey, APIRoots string
}

// CA is a running Pebble.
type CA struct {
	// Directory is the ACME directory URL.
	Directory string
	// APIRoots is a PEM file trusting the API's certificate.
	APIRoots string
	// HTTPPort and TLSPort are where challenges are validated.
	HTTPPort, TLSPort int
	mgmt              string
	log               string // Pebble's log file
}

// Start runs Pebble and its DNS until the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	pebble, dnsBin := Bin(t, "pebble"), Bin(t, "pebble-challtestsrv")
	if o.Listen == "" {
		o.Listen = "127.0.0.1"
	}
	if o.Resolve == "" {
		o.Resolve = "127.0.0.1"
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = FreePort(t)
	}
	if o.TLSPort == 0 {
		o.TLSPort = FreePort(t)
	}
	if o.APICert == "" {
		certs := testCerts(t)
		o.APICert, o.APIKey = filepath.Join(certs, "localhost", "cert.pem"), filepath.Join(certs, "localhost", "key.pem")
		o.APIRoots = filepath.Join(certs, "pebble.minica.pem")
	}
	dir := t.TempDir()
	api := net.JoinHostPort(o.Listen, fmt.Sprint(FreePort(t)))
	ca := &CA{Directory: "https://" + api + "/dir", APIRoots: o.APIRoots, HTTPPort: o.HTTPPort, TLSPort: o.TLSPort,
		mgmt: net.JoinHostPort(o.Listen, fmt.Sprint(FreePort(t)))}
	profile := map[string]any{"description": "test"}
	if o.Validity > 0 {
		profile["validityPeriod"] = int(o.Validity.Seconds())
	}
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": api, "managementListenAddress": ca.mgmt,
		"certificate": o.APICert, "privateKey": o.APIKey,
		"httpPort": o.HTTPPort, "tlsPort": o.TLSPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"keyAlgorithm": "ecdsa", "profiles": map[string]any{"default": profile},
	}})
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	dnsAddr := o.DNSServer
	if dnsAddr == "" {
		dnsAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		Daemon(t, dir, env, dnsBin, "-defaultIPv4", o.Resolve, "-defaultIPv6", "", "-dnsserver", dnsAddr,
			"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
	}
	Daemon(t, dir, env, pebble, "-config", cfgPath, "-dnsserver", dnsAddr)
	ca.log = filepath.Join(dir, "pebble.log")
	WaitListening(t, api)
	WaitListening(t, ca.mgmt)
	return ca
}

// testCerts is Pebble's test/certs directory in the module cache.
func testCerts(t testing.TB) string {
	t.Helper()
	gomod, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	certs := filepath.Join(strings.TrimSpace(string(gomod)), "github.com", "letsencrypt", "pebble", "v2@"+Version, "test", "certs")
	if _, err := os.Stat(filepath.Join(certs, "pebble.minica.pem")); err == nil {
		return certs
	}
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/letsencrypt/pebble/v2@"+Version).Output()
	var m struct{ Dir string }
	if err != nil || json.Unmarshal(out, &m) != nil {
		t.Fatalf("Pebble's test certificates: %v", err)
	}
	return filepath.Join(m.Dir, "test", "certs")
}

// Orders is how many orders Pebble has taken so far, as its log says.
func (c *CA) Orders(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(line, "There are now "); ok {
			fmt.Sscanf(rest, "%d orders", &n)
		}
	}
	return n
}

// OrdersFor is how many of Pebble's orders so far got as far as
// checking name (*.x for a wildcard): with authorization reuse off, each
// order checks each of its names once. For a CA shared with other
// names, where Orders counts theirs too.
func (c *CA) OrdersFor(t testing.TB, name string) int {
	t.Helper()
	b, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatal(err)
	}
	base, wild := strings.CutPrefix(name, "*.")
	want := fmt.Sprintf(`Value:%q}`, base)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Pulled a task") && strings.Contains(line, want) && strings.Contains(line, fmt.Sprintf("Wildcard:%v}", wild)) {
			n++
		}
	}
	return n
}

// Roots fetches the root that Pebble's certificates chain to.
func (c *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(c.APIRoots)
	if err != nil {
		t.Fatal(err)
	}
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api}}, Timeout: 5 * time.Second}
	resp, err := client.Get("https://" + c.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no root from Pebble: %s", b)
	}
	return pool
}

// Bin finds name on PATH or in GOPATH/bin.
func Bin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s is not installed (go install github.com/letsencrypt/pebble/v2/cmd/%s@%s; scripts/deps.sh does)", name, name, Version)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// Daemon runs bin until the test ends, logging to dir; the end of its
// log is shown if the test failed.
func Daemon(t testing.TB, dir string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
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
			t.Logf("%s log:\n%s", filepath.Base(bin), lastLines(string(b), 30))
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a loopback port nobody listens on, for servers that
// must be told their port before they start.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WaitListening waits up to 10s for addr to accept connections.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	var last error
	if !waittest.PollEvery(10*time.Second, 100*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if last = err; err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("%s did not come up within 10s: %v", addr, last)
	}
}
