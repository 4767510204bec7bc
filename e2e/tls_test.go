//go:build lab

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/waittest"
)

// TestHTTPSWithInternalCA deploys an app with tls: internal behind the
// proxy: each host's proxy issues a certificate from its own CA, whose
// root `hoist proxy ca` prints; HTTPS (HTTP/2) verifies against it, plain
// HTTP is redirected, `proxy status` shows the expiry, and the same
// certificate is served after the proxy restarts.
func TestHTTPSWithInternalCA(t *testing.T) {
	hosts := needLab(t)
	const name = "tlsi.test"
	a := newApp(t, "tlsi", 3300, hosts, "proxy:\n  hosts: ["+name+"]\n  tls: internal\n  hsts: true\n")
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	roots := x509.NewCertPool()
	if pem := mustHoist(t, a.dir, "proxy", "ca"); !roots.AppendCertsFromPEM([]byte(pem)) {
		t.Fatalf("hoist proxy ca printed no certificate:\n%s", pem)
	}

	serials := map[string]string{}
	for _, h := range hosts {
		resp, leaf := getHTTPS(t, h, name, roots)
		if got := strings.TrimSpace(resp.body); got != "hello from release "+id {
			t.Errorf("%s over HTTPS: %q", h, got)
		}
		if resp.proto != "HTTP/2.0" {
			t.Errorf("%s over HTTPS spoke %s, want HTTP/2.0", h, resp.proto)
		}
		if !strings.HasPrefix(resp.hsts, "max-age=") {
			t.Errorf("%s: Strict-Transport-Security = %q", h, resp.hsts)
		}
		serials[h] = leaf.SerialNumber.String()

		// Plain HTTP is redirected to HTTPS.
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", "http://"+h+"/x?y=1", nil)
		req.Host = name
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != "https://"+name+"/x?y=1" {
			t.Errorf("%s over HTTP: %d to %q, want 308 to https://%s/x?y=1", h, r.StatusCode, r.Header.Get("Location"), name)
		}
	}

	var st []struct {
		Host   string `json:"host"`
		Routes []struct {
			App          string                          `json:"app"`
			Certificates map[string]hostproto.CertStatus `json:"certificates"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "proxy", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, hs := range st {
		found := false
		for _, r := range hs.Routes {
			if r.App == "tlsi" {
				c := r.Certificates[name]
				found = time.Until(c.Expires) > 24*time.Hour && c.ObtainedBy == "internal CA"
			}
		}
		if !found {
			t.Errorf("proxy status on %s shows no certificate for %s: %+v", hs.Host, name, hs.Routes)
		}
	}

	// Certificates are kept on disk: a restarted proxy serves the same.
	conn := dialLab(t, hosts[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Run(ctx, "systemctl restart hoist-proxy.service", nil, io.Discard, io.Discard); err != nil {
		t.Fatalf("restart proxy: %v", err)
	}
	_, leaf := getHTTPS(t, hosts[0], name, roots)
	if got := leaf.SerialNumber.String(); got != serials[hosts[0]] {
		t.Errorf("after a restart the proxy serves certificate %s, want the stored %s", got, serials[hosts[0]])
	}
}

type httpsAnswer struct{ body, proto, hsts string }

// getHTTPS fetches https://name/ from the proxy at addr:443, verifying
// its certificate against roots, retrying while the certificate is
// being issued.
func getHTTPS(t *testing.T, addr, name string, roots *x509.CertPool) (httpsAnswer, *x509.Certificate) {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: name},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr+":443")
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var last error
	var answer httpsAnswer
	var leaf *x509.Certificate
	if !waittest.PollEvery(30*time.Second, 500*time.Millisecond, func() bool {
		resp, err := client.Get("https://" + name + "/")
		if err != nil {
			last = err
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			last = &httpError{resp.Status, string(b)}
			return false
		}
		answer, leaf = httpsAnswer{string(b), resp.Proto, resp.Header.Get("Strict-Transport-Security")}, resp.TLS.PeerCertificates[0]
		return true
	}) {
		t.Fatalf("https://%s/ at %s, for 30s: %v", name, addr, last)
	}
	return answer, leaf
}

type httpError struct{ status, body string }

func (e *httpError) Error() string { return e.status + ": " + e.body }
