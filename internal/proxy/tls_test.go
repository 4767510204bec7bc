package proxy

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hoisttls "github.com/hoistdev/hoist/internal/tls"
)

// pebble starts Pebble, a real ACME server, with pebble-challtestsrv as
// its DNS (every name resolves to 127.0.0.1); it validates challenges on
// 127.0.0.1:5002 (HTTP-01) and :5001 (TLS-ALPN-01). It returns the ACME
// directory URL and the file of roots its API is trusted with.
func pebble(t *testing.T) (string, string) {
	t.Helper()
	bin := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		gobin, _ := exec.Command("go", "env", "GOPATH").Output()
		p := filepath.Join(strings.TrimSpace(string(gobin)), "bin", name)
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; scripts/deps.sh installs it", name)
			}
			t.Skipf("%s is not installed (go install github.com/letsencrypt/pebble/v2/cmd/%s@v2.10.1)", name, name)
		}
		return p
	}
	pebbleBin, dnsBin := bin("pebble"), bin("pebble-challtestsrv")
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2@v2.10.1").Output()
	certs := filepath.Join(strings.TrimSpace(string(modDir)), "test", "certs")
	if err != nil || strings.TrimSpace(string(modDir)) == "" {
		gomod, _ := exec.Command("go", "env", "GOMODCACHE").Output()
		certs = filepath.Join(strings.TrimSpace(string(gomod)), "github.com", "letsencrypt", "pebble", "v2@v2.10.1", "test", "certs")
	}
	dir := t.TempDir()
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
		"certificate": filepath.Join(certs, "localhost", "cert.pem"), "privateKey": filepath.Join(certs, "localhost", "key.pem"),
		"httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"keyAlgorithm": "ecdsa",
	}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "pebble.json")
	os.WriteFile(cfgPath, b, 0o644)

	start := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		log, _ := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	start(dnsBin, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dnsserver", "127.0.0.1:8053",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", "127.0.0.1:8055")
	start(pebbleBin, "-config", cfgPath, "-dnsserver", "127.0.0.1:8053")
	waitTCP(t, "127.0.0.1:14000")
	return "https://127.0.0.1:14000/dir", filepath.Join(certs, "pebble.minica.pem")
}

func waitTCP(t *testing.T, addr string) {
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

// pebbleRoots fetches the root that Pebble's issued certificates chain to.
func pebbleRoots(t *testing.T, minica string) *x509.CertPool {
	t.Helper()
	pem, _ := os.ReadFile(minica)
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &stdtls.Config{RootCAs: api}}, Timeout: 5 * time.Second}
	resp, err := c.Get("https://127.0.0.1:15000/roots/0")
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

// TestACMEChallenges obtains a certificate from Pebble by each challenge
// type and serves HTTPS with it; plain HTTP is redirected.
func TestACMEChallenges(t *testing.T) {
	dirURL, minica := pebble(t)
	tests := map[string]struct{ noHTTP, noALPN bool }{
		"http-01":     {noHTTP: false, noALPN: true},
		"tls-alpn-01": {noHTTP: true, noALPN: false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			certs, err := hoisttls.New(hoisttls.Options{
				CA: dirURL, RootsFile: minica, Storage: t.TempDir(), Email: "ops@hoist.test",
				HTTPPort: 5002, TLSALPNPort: 5001, DisableHTTP01: tt.noHTTP, DisableTLSALPN01: tt.noALPN,
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Options{Certs: certs})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := net.Listen("tcp", "127.0.0.1:5002")
			if err != nil {
				t.Fatal(err)
			}
			secure, err := net.Listen("tcp", "127.0.0.1:5001")
			if err != nil {
				t.Fatal(err)
			}
			quiet := log.New(io.Discard, "", 0) // handshakes fail until the certificate is in
			hs := &http.Server{Handler: certs.HTTPHandler(s), ErrorLog: quiet}
			ts := &http.Server{Handler: s, TLSConfig: certs.TLSConfig(), ErrorLog: quiet}
			go hs.Serve(plain)
			go ts.ServeTLS(secure, "", "")
			defer hs.Close()
			defer ts.Close()

			name := strings.ReplaceAll(name, "-", "") + ".hoist.test"
			a := backend(t, "a", true)
			r := route("a", addr(a), name)
			r.TLS, r.HSTS = true, true
			if _, err := s.SetRoute(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Timeout: 5 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &stdtls.Config{RootCAs: pebbleRoots(t, minica), ServerName: name},
					ForceAttemptHTTP2: true},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			var last error
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", "https://127.0.0.1:5001/", nil)
				req.Host = name
				resp, err := client.Do(req)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !strings.HasPrefix(string(body), "a xff=127.0.0.1 proto=https") || resp.Header.Get("Strict-Transport-Security") == "" || resp.ProtoMajor != 2 {
						t.Errorf("HTTPS answer: %s %q hsts=%q", resp.Proto, body, resp.Header.Get("Strict-Transport-Security"))
					}
					if exp, ok := certs.Expiry(name); !ok || time.Until(exp) < time.Hour {
						t.Errorf("certificate expiry %v, %v", exp, ok)
					}
					last = nil
					break
				}
				last = err
				time.Sleep(500 * time.Millisecond)
			}
			if last != nil {
				t.Fatalf("no valid certificate within 60s: %v", last)
			}
			req, _ := http.NewRequest("GET", "http://127.0.0.1:5002/x?y=1", nil)
			req.Host = name
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != fmt.Sprintf("https://%s/x?y=1", name) {
				t.Errorf("plain HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}
