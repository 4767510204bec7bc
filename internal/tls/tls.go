// Package tls gets and renews the edge proxy's certificates from an ACME
// CA with certmagic, by HTTP-01 or TLS-ALPN-01, and keeps them on disk so
// that they survive restarts. The CA's directory URL and the roots that
// the CA's own API is trusted with are configurable, for staging, private
// CAs and tests.
package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Options configure the certificate manager.
type Options struct {
	// CA is the ACME directory URL. Default: Let's Encrypt.
	CA string
	// Email is the ACME account's contact.
	Email string
	// RootsFile is a PEM file of extra roots to trust the CA's API with
	// (a private CA, Pebble).
	RootsFile string
	// Storage is where certificates and account keys live.
	Storage string
	// HTTPPort and TLSALPNPort are where the proxy answers challenges, if
	// not 80 and 443.
	HTTPPort, TLSALPNPort int
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off.
	DisableHTTP01, DisableTLSALPN01 bool
	// RenewalWindowRatio is the part of a certificate's life left at which
	// it is renewed. Default certmagic's (1/3).
	RenewalWindowRatio float64
}

// Manager obtains, serves and renews certificates.
type Manager struct {
	cfg   *certmagic.Config
	acme  *certmagic.ACMEIssuer
	cache *certmagic.Cache
}

// New returns a manager; nothing is obtained until Manage.
func New(o Options) (*Manager, error) {
	if o.Storage == "" {
		return nil, fmt.Errorf("tls: no storage directory")
	}
	var roots *x509.CertPool
	if o.RootsFile != "" {
		pem, err := os.ReadFile(o.RootsFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read CA roots: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", o.RootsFile)
		}
	}
	m := &Manager{}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		Logger:           zap.NewNop(),
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: o.Storage},
		RenewalWindowRatio: o.RenewalWindowRatio,
		Logger:             zap.NewNop(),
	})
	m.acme = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA: o.CA, Email: o.Email, Agreed: true, TrustedRoots: roots,
		AltHTTPPort: o.HTTPPort, AltTLSALPNPort: o.TLSALPNPort,
		DisableHTTPChallenge: o.DisableHTTP01, DisableTLSALPNChallenge: o.DisableTLSALPN01,
		Logger: zap.NewNop(),
	})
	m.cfg.Issuers = []certmagic.Issuer{m.acme}
	return m, nil
}

// Manage starts obtaining (and then renewing) certificates for names in
// the background; requests for them are served once a certificate is in.
func (m *Manager) Manage(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return m.cfg.ManageAsync(ctx, names)
}

// TLSConfig serves the managed certificates, answers TLS-ALPN-01
// challenges, and offers HTTP/2.
func (m *Manager) TLSConfig() *stdtls.Config {
	c := m.cfg.TLSConfig()
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	c.MinVersion = stdtls.VersionTLS12
	return c
}

// HTTPHandler answers HTTP-01 challenges and passes everything else on.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.acme.HTTPChallengeHandler(next)
}

// Expiry returns when the certificate served for name expires.
func (m *Manager) Expiry(name string) (time.Time, bool) {
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil {
			return c.Leaf.NotAfter, true
		}
	}
	return time.Time{}, false
}
