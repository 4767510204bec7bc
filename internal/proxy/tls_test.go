package proxy

import (
	"bufio"
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/proxy/headers"
	"github.com/hoistdev/hoist/internal/waittest"
)

// running is a proxy started with Run, on loopback ports of its own.
type running struct {
	httpPort, httpsPort int
	client              *Client
	stop                func() error
}

func startRun(t *testing.T, cm *certs.Manager, httpPort, httpsPort int, fast bool) *running {
	t.Helper()
	dir := t.TempDir()
	notifySock := filepath.Join(dir, "notify.sock")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifySock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	t.Setenv("NOTIFY_SOCKET", notifySock)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	o := RunOptions{
		HTTP: fmt.Sprintf("127.0.0.1:%d", httpPort), HTTPS: fmt.Sprintf("127.0.0.1:%d", httpsPort),
		Control:  filepath.Join(dir, "proxy.sock"),
		Options:  Options{StatePath: filepath.Join(dir, "state.json"), Certs: cm, HealthInterval: 200 * time.Millisecond},
		Log:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		FastLoop: fast,
	}
	go func() { errc <- Run(ctx, o) }()
	nl.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := nl.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		cancel()
		t.Fatalf("no READY=1 from the proxy: %q %v (run: %v)", buf[:n], err, drainErr(errc))
	}
	r := &running{httpPort: httpPort, httpsPort: httpsPort, client: &Client{Socket: o.Control}}
	stopped := false
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("Run did not return within 10s")
		}
	}
	t.Cleanup(func() { r.stop() })
	return r
}

func drainErr(c chan error) error {
	select {
	case err := <-c:
		return err
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// httpsClient trusts roots and sends SNI name whatever address it dials.
func httpsClient(roots *x509.CertPool, name string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &stdtls.Config{RootCAs: roots, ServerName: name}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// waitHTTPS polls until HTTPS for name verifies against roots and the
// backend answers; it returns the certificate served.
func waitHTTPS(t *testing.T, port int, name string, roots *x509.CertPool, within time.Duration) (*http.Response, string, *x509.Certificate) {
	t.Helper()
	client := httpsClient(roots, name)
	var last error
	var resp *http.Response
	var body []byte
	if !waittest.PollEvery(within, 300*time.Millisecond, func() bool {
		req, _ := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/", port), nil)
		req.Host = name
		resp, last = client.Do(req)
		if last != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return true
	}) {
		t.Fatalf("no valid certificate for %s within %s: %v", name, within, last)
	}
	return resp, string(body), resp.TLS.PeerCertificates[0]
}

// servedCert returns the certificate the proxy hands out for name.
func servedCert(port int, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := stdtls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &stdtls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// checkServing checks what a TLS route answers over HTTPS (HTTP/2,
// HSTS, the forwarded proto) and plain HTTP (a redirect), and the
// certificate's status: obtained by how, renewal due before expiry.
func checkServing(t *testing.T, r *running, name, how string, roots *x509.CertPool, resp *http.Response, body string) {
	t.Helper()
	if !strings.HasPrefix(body, "a xff=127.0.0.1 proto=https host="+name) || resp.ProtoMajor != 2 ||
		resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("HTTPS answer: %s %q hsts=%q", resp.Proto, body, resp.Header.Get("Strict-Transport-Security"))
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/x?y=1", r.httpPort), nil)
	req.Host = name
	presp, err := httpsClient(roots, name).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	want := fmt.Sprintf("https://%s:%d/x?y=1", name, r.httpsPort)
	if presp.StatusCode != http.StatusPermanentRedirect || presp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d %q, want a redirect to %s", presp.StatusCode, presp.Header.Get("Location"), want)
	}
	st, err := r.client.Status(context.Background())
	if err != nil || len(st) != 1 {
		t.Fatalf("status: %v %v", st, err)
	}
	if c, ok := st[0].Certificates[name]; !ok || time.Until(c.Expires) <= 0 || c.ObtainedBy != how || !c.RenewAt.After(time.Now()) || !c.RenewAt.Before(c.Expires) {
		t.Errorf("status: certificate expiry %v for %s", st[0].Certificates, name)
	}
}

func tlsRoute(app, upstream, name string) hostproto.Route {
	r := route(app, upstream, name)
	r.TLS, r.HSTS = true, true
	return r
}

// TestInternalCA serves HTTPS with a certificate from the proxy's own
// CA, run the way systemd runs it (Run: READY=1, control socket), and
// serves the same certificate from storage after a restart.
func TestInternalCA(t *testing.T) { bothPaths(t, testInternalCA) }

func testInternalCA(t *testing.T, fast bool) {
	storage := t.TempDir()
	cm, err := certs.New(certs.Options{Storage: storage, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cm, pebbletest.FreePort(t), pebbletest.FreePort(t), fast)
	a := backend(t, "a", true)
	name := "lab.hoist.test"
	if _, err := r.client.SetRoute(context.Background(), tlsRoute("a", a.addr(), name)); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cm.InternalRoot()) {
		t.Fatal("no internal root")
	}
	resp, body, leaf := waitHTTPS(t, r.httpsPort, name, roots, 20*time.Second)
	checkServing(t, r, name, "internal CA", roots, resp, body)

	// HTTP/1.1 over TLS: a GET takes the fast loop (if on), a POST is
	// handed to net/http on the same kind of connection; both are told
	// it is HTTPS.
	h1 := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &stdtls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"http/1.1"}},
	}}
	defer h1.CloseIdleConnections()
	for _, method := range []string{"GET", "POST", "GET"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d/", r.httpsPort), body)
		req.Host = name
		resp, err := h1.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 1 || !strings.HasPrefix(string(b), "a xff=127.0.0.1 proto=https host="+name) ||
			!slices.Equal(resp.Header.Values("Strict-Transport-Security"), []string{headers.HSTS}) {
			// The fast loop (GET) and net/http (POST) send the same one.
			t.Errorf("%s over HTTP/1.1 and TLS: %s %q hsts=%q", method, resp.Proto, b, resp.Header.Get("Strict-Transport-Security"))
		}
	}

	// An app that sends its own HSTS keeps it, and gets no second one
	// from the proxy: browsers take the first of two, which may be the
	// proxy's rather than the app's.
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d/sts", r.httpsPort), strings.NewReader(""))
		req.Host = name
		resp, err := h1.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if diff := cmp.Diff([]string{upstreamSTS}, resp.Header.Values("Strict-Transport-Security")); diff != "" {
			t.Errorf("%s of a page with the app's own HSTS (-want +got):\n%s", method, diff)
		}
	}

	// A WebSocket over TLS (HTTP/1.1 upgrade).
	conn, err := stdtls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.httpsPort), &stdtls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", name)
	br := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if wresp, err := http.ReadResponse(br, nil); err != nil || wresp.StatusCode != 101 {
		t.Fatalf("upgrade over TLS: %v %v", wresp, err)
	}
	if got := echo(t, conn, br, "tls"); got != "a:tls" {
		t.Errorf("echo over TLS: %q", got)
	}

	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The WebSocket was told the proxy is going away.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if op, p, err := readFrame(br); err != nil || op != 0x8 || string(p) != "\x03\xe9" {
		t.Errorf("on stop: op %d %x %v", op, p, err)
	}

	certs2, err := certs.New(certs.Options{Storage: storage, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := newTLSFront(t, certs2)
	if err := certs2.Manage(context.Background(), []string{name}); err != nil {
		t.Fatal(err)
	}
	got, err := servedCert(srv, name, roots)
	if err != nil {
		t.Fatal(err)
	}
	if got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("after a restart the certificate was issued again instead of loaded from storage")
	}
}

// TestTLSSuites: the public listener offers TLS 1.2 only with ECDHE
// key exchange and AEAD ciphers (Mozilla's "intermediate" profile),
// TLS 1.3 as Go does, and nothing older: the CBC suites Go offers on
// TLS 1.2 by default were gone (testssl.sh's LUCKY13 finding).
func TestTLSSuites(t *testing.T) {
	cm, err := certs.New(certs.Options{Storage: t.TempDir(), Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	port := newTLSFront(t, cm)
	name := "suites.hoist.test"
	if err := cm.Manage(context.Background(), []string{name}); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cm.InternalRoot())
	handshake := func(conf *stdtls.Config) error {
		conf.RootCAs, conf.ServerName = roots, name
		c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), conf)
		if err == nil {
			c.Close()
		}
		return err
	}
	// The certificate is issued in the background.
	var last error
	if !waittest.PollEvery(10*time.Second, 100*time.Millisecond, func() bool { last = handshake(&stdtls.Config{}); return last == nil }) {
		t.Fatalf("no certificate for %s within 10s: %v", name, last)
	}
	var accepted []string
	for _, cs := range append(stdtls.CipherSuites(), stdtls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, stdtls.VersionTLS12) {
			continue
		}
		if handshake(&stdtls.Config{MaxVersion: stdtls.VersionTLS12, CipherSuites: []uint16{cs.ID}}) == nil {
			accepted = append(accepted, cs.Name)
		}
	}
	// The internal CA's keys are ECDSA: the ECDHE_RSA suites of the list
	// are for RSA certificates.
	want := []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
	slices.Sort(accepted)
	if diff := cmp.Diff(want, accepted); diff != "" {
		t.Errorf("TLS 1.2 suites accepted (-want +got):\n%s", diff)
	}
	if err := handshake(&stdtls.Config{MinVersion: stdtls.VersionTLS13}); err != nil {
		t.Errorf("TLS 1.3: %v", err)
	}
	if err := handshake(&stdtls.Config{MaxVersion: stdtls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
}

// newTLSFront serves certs' TLS config on a loopback port.
func newTLSFront(t *testing.T, cm *certs.Manager) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: cm.TLSConfig(), ErrorLog: quietLog()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close(); cm.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
