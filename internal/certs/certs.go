// Package certs gets, keeps and renews the edge proxy's certificates with
// certmagic. They come from an ACME CA (Let's Encrypt by default; any
// directory URL, with extra roots to trust its API with, for staging,
// private CAs and Pebble in tests) by HTTP-01 or TLS-ALPN-01, or by
// DNS-01 when a DNS provider is given; or, for labs, from a local CA of
// the proxy's own (Options.Internal). Certificates and keys live in a
// certmagic FileStorage directory, so they survive restarts, and are
// renewed in the background.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Options configure the certificate manager.
type Options struct {
	// Storage is where certificates, keys and ACME accounts live.
	Storage string

	// Internal issues certificates from a local CA kept in Storage
	// (created on first use) instead of an ACME CA: for labs and tests,
	// where clients are told to trust InternalRoot.
	Internal bool
	// InternalLifetime is the life of an internal certificate (default
	// 7 days; renewed when a third is left).
	InternalLifetime time.Duration

	// CA is the ACME directory URL. Default: Let's Encrypt.
	CA string
	// Email is the ACME account's contact.
	Email string
	// Roots (PEM), or the PEM file RootsFile, are extra roots to trust
	// the CA's API with (a private CA, Pebble).
	Roots     []byte
	RootsFile string
	// HTTPPort and TLSALPNPort are where the proxy answers challenges, if
	// not 80 and 443 (the CA still connects to 80 and 443; set them when
	// a port redirect or a test CA points elsewhere).
	HTTPPort, TLSALPNPort int
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off.
	DisableHTTP01, DisableTLSALPN01 bool
	// DNSProvider, when set, solves DNS-01 challenges (any libdns
	// provider: record getter, appender and deleter), which wildcard
	// names need. DNSResolvers are the resolvers that check propagation.
	DNSProvider  certmagic.DNSProvider
	DNSResolvers []string

	// RenewalWindowRatio is the part of a certificate's life left at which
	// it is renewed. Default certmagic's (1/3).
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal. Default certmagic's (10 minutes).
	RenewCheckInterval time.Duration
	// DisableARI ignores the CA's renewal information (ARI) and renews
	// by RenewalWindowRatio alone.
	DisableARI bool

	// DefaultServerName is the certificate served to clients that send
	// no server name (SNI), as clients that dial an IP address do.
	DefaultServerName string

	// Logger receives certmagic's logs; nil discards them.
	Logger *zap.Logger
}

// Manager obtains, serves and renews certificates.
type Manager struct {
	cfg      *certmagic.Config
	acme     *certmagic.ACMEIssuer // nil with Internal
	internal *internalCA           // nil without Internal
	cache    *certmagic.Cache
}

// New returns a manager; nothing is obtained until Manage.
func New(o Options) (*Manager, error) {
	if o.Storage == "" {
		return nil, errors.New("tls: no storage directory")
	}
	if err := os.MkdirAll(o.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &Manager{}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             logger,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: o.Storage},
		RenewalWindowRatio: o.RenewalWindowRatio,
		DisableARI:         o.DisableARI,
		DefaultServerName:  o.DefaultServerName,
		Logger:             logger,
	})
	if o.Internal {
		ca, err := loadInternalCA(o.Storage, o.InternalLifetime)
		if err != nil {
			m.cache.Stop()
			return nil, err
		}
		m.internal = ca
		m.cfg.Issuers = []certmagic.Issuer{ca}
		return m, nil
	}
	roots, err := o.roots()
	if err != nil {
		m.cache.Stop()
		return nil, err
	}
	tmpl := certmagic.ACMEIssuer{
		CA: o.CA, Email: o.Email, Agreed: true, TrustedRoots: roots,
		AltHTTPPort: o.HTTPPort, AltTLSALPNPort: o.TLSALPNPort,
		DisableHTTPChallenge: o.DisableHTTP01, DisableTLSALPNChallenge: o.DisableTLSALPN01,
		Logger: logger,
	}
	if o.DNSProvider != nil {
		tmpl.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider: o.DNSProvider, Resolvers: o.DNSResolvers, Logger: logger,
		}}
	}
	m.acme = certmagic.NewACMEIssuer(m.cfg, tmpl)
	m.cfg.Issuers = []certmagic.Issuer{m.acme}
	return m, nil
}

// roots returns the extra roots to trust the ACME CA with, nil for the
// system's.
func (o Options) roots() (*x509.CertPool, error) {
	pem, name := o.Roots, "the given roots"
	if o.RootsFile != "" {
		b, err := os.ReadFile(o.RootsFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read CA roots: %w", err)
		}
		pem, name = b, o.RootsFile
	}
	if len(pem) == 0 {
		return nil, nil
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s hold no PEM certificate", name)
	}
	return roots, nil
}

// Manage starts obtaining (and then renewing) certificates for names in
// the background; handshakes for them succeed once a certificate is in.
// Certificates already in storage are in before it returns (within
// loadTimeout), so that a proxy process that starts, after a restart or
// in an upgrade, never fails a handshake for a name it has one for.
// Wildcard names are only managed with a DNS provider or the internal CA.
func (m *Manager) Manage(ctx context.Context, names []string) error {
	var ok []string
	for _, n := range names {
		if strings.HasPrefix(n, "*.") && m.internal == nil && (m.acme == nil || m.acme.DNS01Solver == nil) {
			continue
		}
		ok = append(ok, n)
	}
	if len(ok) == 0 {
		return nil
	}
	if err := m.cfg.ManageAsync(ctx, ok); err != nil {
		return err
	}
	// certmagic loads stored certificates in the background too.
	deadline := time.Now().Add(loadTimeout)
	for _, n := range ok {
		for !m.Has(n) && m.stored(ctx, n) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// loadTimeout bounds Manage's wait for certificates to load from storage.
const loadTimeout = 10 * time.Second

// stored reports whether storage holds a certificate for name from one
// of the manager's issuers.
func (m *Manager) stored(ctx context.Context, name string) bool {
	for _, iss := range m.cfg.Issuers {
		if m.cfg.Storage.Exists(ctx, certmagic.StorageKeys.SiteCert(iss.IssuerKey(), name)) {
			return true
		}
	}
	return false
}

// TLSConfig serves the managed certificates, answers TLS-ALPN-01
// challenges, and offers HTTP/2 then HTTP/1.1.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.cfg.TLSConfig()
	c.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	c.MinVersion = tls.VersionTLS12
	get := c.GetCertificate
	c.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		// Some clients send an IP address as the server name, which SNI
		// does not allow: treat it as no name (DefaultServerName).
		if h.ServerName != "" && net.ParseIP(h.ServerName) != nil {
			hh := *h
			hh.ServerName = ""
			return get(&hh)
		}
		return get(h)
	}
	return c
}

// HTTPHandler answers HTTP-01 challenges and passes everything else on.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if m.acme == nil {
		return next
	}
	return m.acme.HTTPChallengeHandler(next)
}

// Has reports whether a certificate for name is ready to be served.
func (m *Manager) Has(name string) bool {
	_, ok := m.Expiry(name)
	return ok
}

// Expiry returns when the certificate served for name expires.
func (m *Manager) Expiry(name string) (time.Time, bool) {
	var best time.Time
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(best) {
			best = c.Leaf.NotAfter
		}
	}
	return best, !best.IsZero()
}

// InternalRoot returns the internal CA's root certificate as PEM, for
// clients to trust; nil without Options.Internal.
func (m *Manager) InternalRoot() []byte {
	if m.internal == nil {
		return nil
	}
	return m.internal.rootPEM
}

// Close stops renewals.
func (m *Manager) Close() { m.cache.Stop() }
