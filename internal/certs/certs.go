// Package certs gets, keeps and renews the edge proxy's certificates with
// certmagic. They come from an ACME CA (Let's Encrypt by default; any
// directory URL, with extra roots to trust its API with, for staging,
// private CAs and Pebble in tests) by HTTP-01, TLS-ALPN-01 or DNS-01, or,
// for labs, from a local CA of the proxy's own (Options.Internal).
// Certificates and keys live in a certmagic FileStorage directory, so
// they survive restarts, and are renewed in the background.
//
// How each name is got is the app's Plan (plan.go), which hoist setup
// writes on each host: the challenge (DNS-01 through the app's DNS
// provider, whose credentials only the plan holds), and, with several
// hosts, which host obtains it. The others copy it from that host over
// the peer channel (peer.go, follow.go), so that a name has one order
// and one certificate however many hosts serve it.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/hostproto"
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

	// PlanDir holds the apps' certificate plans (plan.go); "" for none:
	// every name is obtained here by HTTP-01 or TLS-ALPN-01.
	PlanDir string
	// PeerListen, when set, is where the peer channel listens when this
	// host obtains certificates that other hosts copy; by default it
	// listens on the addresses the plans name (Plan.Listen).
	PeerListen string
	// PeerRefresh is how often a copy is checked against the issuer's
	// (default 1h); PeerRetry how soon a missing or failed copy is tried
	// again, and how often plans are read (default 15s).
	PeerRefresh, PeerRetry time.Duration

	// Logger receives certmagic's logs; nil discards them.
	Logger *zap.Logger
}

// Manager obtains, serves and renews certificates.
type Manager struct {
	opts     Options
	cache    *certmagic.Cache
	storage  certmagic.Storage
	logger   *zap.Logger
	roots    *x509.CertPool
	internal *internalCA // nil without Internal
	track    *tracker

	// Configs by the way they obtain a name: http by HTTP-01 or
	// TLS-ALPN-01 (or the internal CA); httpOnly by HTTP-01 alone, for
	// names other hosts copy (they can relay HTTP-01, not TLS-ALPN-01).
	http, httpOnly *certmagic.Config
	acme           *certmagic.ACMEIssuer // http's; nil with Internal

	mu         sync.Mutex
	plans      plans
	planKey    string                  // the plans as last read
	managedKey string                  // the plans the names were last set up by
	readAt     time.Time               // when the plans were read
	dns        map[string]*dnsConfig   // by app: DNS-01 through its provider
	names      map[string]bool         // every name Manage was given
	follows    map[string]*follow      // names copied from an issuer
	peerLns    map[string]net.Listener // the peer channel, by address
	peerFail   map[string]string       // the addresses it could not listen on, and why
	peer       peerEnds                // what the peer channel shows every client
	refreshMu  sync.Mutex              // one refresh of the copies at a time (follow.go)

	stop chan struct{}
	done chan struct{}
}

// dnsConfig obtains an app's DNS-01 names through its provider.
type dnsConfig struct {
	key string // the DNS plan it was made from
	cfg *certmagic.Config
}

// New returns a manager; nothing is obtained until Manage.
func New(o Options) (*Manager, error) {
	if o.Storage == "" {
		return nil, errors.New("tls: no storage directory")
	}
	if err := os.MkdirAll(o.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if o.PeerRefresh <= 0 {
		o.PeerRefresh = time.Hour
	}
	if o.PeerRetry <= 0 {
		o.PeerRetry = 15 * time.Second
	}
	m := &Manager{opts: o, logger: o.Logger, storage: &certmagic.FileStorage{Path: o.Storage},
		track: newTracker(filepath.Join(o.Storage, "hoist", "obtained")),
		dns:   map[string]*dnsConfig{}, names: map[string]bool{}, follows: map[string]*follow{},
		peerLns: map[string]net.Listener{}, peerFail: map[string]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if m.logger == nil {
		m.logger = zap.NewNop()
	}
	var err error
	if m.peer, err = newPeerEnds(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(c certmagic.Certificate) (*certmagic.Config, error) { return m.configFor(c.Names), nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             m.logger,
	})
	if err := m.setUp(); err != nil {
		m.cache.Stop()
		return nil, err
	}
	go m.loop()
	return m, nil
}

// setUp makes the configs that need no plan.
func (m *Manager) setUp() error {
	o := m.opts
	if o.Internal {
		ca, err := loadInternalCA(o.Storage, o.InternalLifetime)
		if err != nil {
			return err
		}
		m.internal = ca
		m.http = m.newConfig("internal CA")
		m.http.Issuers = []certmagic.Issuer{ca}
		m.httpOnly = m.http
		return nil
	}
	roots, err := o.roots()
	if err != nil {
		return err
	}
	m.roots = roots
	m.http = m.newConfig("http-01")
	m.acme = certmagic.NewACMEIssuer(m.http, m.issuerTemplate(o.DisableHTTP01, o.DisableTLSALPN01, nil))
	m.http.Issuers = []certmagic.Issuer{m.acme}
	m.httpOnly = m.newConfig("http-01")
	m.httpOnly.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(m.httpOnly, m.issuerTemplate(false, true, nil))}
	return nil
}

// newConfig is a certmagic config on the shared cache and storage that
// records how its certificates came in: by the challenge the proxy last
// answered for the name, or else by how.
func (m *Manager) newConfig(how string) *certmagic.Config {
	return certmagic.New(m.cache, certmagic.Config{
		Storage:            m.storage,
		RenewalWindowRatio: m.opts.RenewalWindowRatio,
		DisableARI:         m.opts.DisableARI,
		DefaultServerName:  m.opts.DefaultServerName,
		Logger:             m.logger,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			name, _ := data["identifier"].(string)
			switch event {
			case "cert_obtained":
				by := how
				if how == "http-01" {
					by = m.track.lastChallenge(name, how)
				}
				m.track.got(name, obtained{By: by, At: time.Now().UTC()})
				m.obtainedHere(name)
			case "cert_failed":
				m.track.fail(name, fmt.Sprint(data["error"]))
			}
			return nil
		},
	})
}

func (m *Manager) issuerTemplate(noHTTP, noALPN bool, solver *certmagic.DNS01Solver) certmagic.ACMEIssuer {
	o := m.opts
	t := certmagic.ACMEIssuer{
		CA: o.CA, Email: o.Email, Agreed: true, TrustedRoots: m.roots,
		AltHTTPPort: o.HTTPPort, AltTLSALPNPort: o.TLSALPNPort,
		DisableHTTPChallenge: noHTTP, DisableTLSALPNChallenge: noALPN,
		Logger: m.logger,
	}
	if solver != nil {
		t.DNS01Solver = solver
	}
	return t
}

// dnsConfigLocked returns the config that obtains app's names by DNS-01
// through p, made anew when p changed.
func (m *Manager) dnsConfigLocked(app string, p *hostproto.DNSPlan) (*certmagic.Config, error) {
	b, _ := json.Marshal(p)
	if d := m.dns[app]; d != nil && d.key == string(b) {
		return d.cfg, nil
	}
	provider, err := dns.New(p.Provider, p.Credentials)
	if err != nil {
		return nil, err
	}
	cfg := m.newConfig("dns-01")
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, m.issuerTemplate(false, false, &certmagic.DNS01Solver{
		DNSManager: certmagic.DNSManager{DNSProvider: provider, Resolvers: p.Resolvers, Logger: m.logger},
	}))}
	m.dns[app] = &dnsConfig{key: string(b), cfg: cfg}
	return cfg, nil
}

// configFor is the config that obtains and renews a certificate for
// names.
func (m *Manager) configFor(names []string) *certmagic.Config {
	if m.internal != nil || len(names) == 0 {
		return m.http
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg, err := m.configForLocked(names[0])
	if err != nil {
		m.logger.Warn("certificate config", zap.Strings("names", names), zap.Error(err))
		return m.http
	}
	return cfg
}

func (m *Manager) configForLocked(name string) (*certmagic.Config, error) {
	pn, ok := m.plans.byName[name]
	switch {
	case m.internal != nil || !ok || (pn.From != "" && !m.tookOverLocked(name)):
		// A copy is never obtained here; its config only serves it.
		return m.http, nil
	case pn.Challenge == hostproto.ChallengeDNS01:
		return m.dnsConfigLocked(pn.plan.App, pn.plan.DNS)
	case pn.Peers || pn.From != "":
		// Peers relay HTTP-01 to whoever obtains it, not TLS-ALPN-01.
		return m.httpOnly, nil
	}
	return m.http, nil
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
// in an upgrade, never fails a handshake for a name it has one for. A
// name the app's plan says another host obtains is copied from it
// instead. Wildcard names are only managed by DNS-01 or the internal CA.
func (m *Manager) Manage(ctx context.Context, names []string) error {
	err := m.manage(ctx, m.refresh(names))
	m.listenPeers()
	return err
}

// refresh reads the plans and returns the names to set up: extra, and
// every name given so far when the plans changed since they were last
// set up.
func (m *Manager) refresh(extra []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadLocked()
	for _, n := range extra {
		m.names[n] = true
	}
	if m.planKey == m.managedKey {
		return extra
	}
	m.managedKey = m.planKey
	all := make([]string, 0, len(m.names))
	for n := range m.names {
		all = append(all, n)
	}
	return all
}

// manage sets each name up as its plan says. certmagic is called
// without m.mu held: it calls back into configFor.
func (m *Manager) manage(ctx context.Context, names []string) error {
	var errs []error
	deadline := time.Now().Add(loadTimeout)
	for _, n := range names {
		m.mu.Lock()
		pn, planned := m.plans.byName[n]
		var cfg *certmagic.Config
		var err error
		switch {
		case m.internal != nil:
			cfg = m.http
		case planned && pn.From != "":
			m.followLocked(n, pn)
		case strings.HasPrefix(n, "*.") && !(planned && pn.Challenge == hostproto.ChallengeDNS01):
			// No way to obtain it: the config check says so.
		default:
			delete(m.follows, n)
			cfg, err = m.configForLocked(n)
		}
		m.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		if cfg == nil {
			continue
		}
		m.dropCopies(n)
		if err := cfg.ManageAsync(context.WithoutCancel(ctx), []string{n}); err != nil {
			errs = append(errs, err)
			continue
		}
		awaitStored(ctx, m, cfg, n, deadline)
	}
	return errors.Join(errs...)
}

// loadTimeout bounds manage's wait for certificates to load from storage.
const loadTimeout = 10 * time.Second

// awaitStored waits, until deadline, for a certificate of name that is
// in storage to be loaded: certmagic loads stored certificates in the
// background.
func awaitStored(ctx context.Context, m *Manager, cfg *certmagic.Config, name string, deadline time.Time) {
	for !m.Has(name) && stored(ctx, cfg, name) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// stored reports whether cfg's storage holds a certificate for name
// from one of its issuers.
func stored(ctx context.Context, cfg *certmagic.Config, name string) bool {
	for _, iss := range cfg.Issuers {
		if cfg.Storage.Exists(ctx, certmagic.StorageKeys.SiteCert(iss.IssuerKey(), name)) {
			return true
		}
	}
	return false
}

// reloadLocked reads the plans again.
func (m *Manager) reloadLocked() {
	ps, err := loadPlans(m.opts.PlanDir)
	if err != nil {
		m.logger.Warn("certificate plans", zap.Error(err))
	}
	b, _ := json.Marshal(ps.byApp)
	m.plans, m.planKey, m.readAt = ps, string(b), time.Now()
}

// issuerPlan is app's plan if this host obtains names for its peers, or
// is one of them (it is told of renewals, and may take over).
func (m *Manager) issuerPlan(app string) *hostproto.CertPlan {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.plans.byApp[app]
	if p == nil || p.PeerSecret == "" || (len(p.Peers) == 0 && !slices.ContainsFunc(p.Names, func(n hostproto.CertPlanName) bool { return n.From == "" })) {
		return nil
	}
	return p
}

// loop reads the plans every PeerRetry, sets the names up again when
// they changed, listens on the peer channel while this host obtains
// certificates for others, and refreshes copies that are due.
func (m *Manager) loop() {
	defer close(m.done)
	if m.opts.PlanDir == "" {
		return
	}
	t := time.NewTicker(m.opts.PeerRetry)
	defer t.Stop()
	for {
		if err := m.manage(context.Background(), m.refresh(nil)); err != nil {
			m.logger.Warn("certificates", zap.Error(err))
		}
		m.listenPeers()
		m.refreshCopies()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// listenPeers keeps the peer channel open on the addresses the plans
// that need it name, and only there.
func (m *Manager) listenPeers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]bool{}
	for _, p := range m.plans.byApp {
		// An issuer for its copiers; a copier in the takeover order for
		// the issuer's word of a renewal, and for when it takes over.
		if p.PeerSecret == "" || (len(p.Peers) == 0 && !slices.ContainsFunc(p.Names, func(n hostproto.CertPlanName) bool { return n.From == "" && n.Peers })) {
			continue
		}
		addrs := p.Listen
		if m.opts.PeerListen != "" {
			addrs = []string{m.opts.PeerListen}
		}
		if len(addrs) == 0 {
			m.peerFailed("app "+p.App, errors.New("its certificate plan names no address for the peer channel: run hoist setup"))
		}
		for _, a := range addrs {
			want[a] = true
		}
	}
	for a, ln := range m.peerLns {
		if !want[a] {
			ln.Close()
			delete(m.peerLns, a)
		}
	}
	var bound int
	for a := range want {
		if m.peerLns[a] != nil {
			bound++
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			// An address peers reach through a NAT is not this host's:
			// the plan names the host's own as well.
			m.peerFailed(a, err)
			continue
		}
		delete(m.peerFail, a)
		m.peerLns[a] = ln
		bound++
		go m.servePeers(ln)
	}
	if len(want) > 0 && bound == 0 {
		m.peerFailed("", errors.New("the peer channel listens on none of its addresses"))
	}
}

// peerFailed logs why the peer channel does not listen on addr, once
// until the reason changes.
func (m *Manager) peerFailed(addr string, err error) {
	if m.peerFail[addr] == err.Error() {
		return
	}
	m.peerFail[addr] = err.Error()
	m.logger.Warn("peer channel", zap.String("addr", addr), zap.Error(err))
}

// peerAddrs are the addresses the peer channel listens on.
func (m *Manager) peerAddrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ln := range m.peerLns {
		out = append(out, ln.Addr().String())
	}
	slices.Sort(out)
	return out
}

// TLSConfig serves the managed certificates, answers TLS-ALPN-01
// challenges, and offers HTTP/2 then HTTP/1.1, over TLS 1.3, or TLS 1.2
// with the suites of tls12Suites.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.http.TLSConfig()
	c.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = tls12Suites
	get := c.GetCertificate
	c.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Contains(h.SupportedProtos, "acme-tls/1") {
			m.track.seen(strings.ToLower(h.ServerName), "tls-alpn-01")
		}
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

// tls12Suites are the TLS 1.2 suites the public listener offers:
// ECDHE key exchange (forward secrecy) with AEAD ciphers only, as
// Mozilla's "intermediate" profile has them (less its DHE suites, which
// Go does not implement). Go's default adds the CBC suites with SHA-1,
// which every client that has TLS 1.2 can do without, and whose
// padding checks have a history (Lucky Thirteen). TLS 1.3's suites are
// not configurable in Go, and all AEAD.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// HTTPHandler answers HTTP-01 challenges, its own or, for a name it
// copies, the issuer's (asked over the peer channel), and passes
// everything else on.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if m.acme == nil {
		return next
	}
	own := m.acme.HTTPChallengeHandler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, challengePrefix)
		if !ok {
			own.ServeHTTP(w, r)
			return
		}
		name := hostOnly(r.Host)
		if m.relayChallenge(w, r, name, token) {
			return
		}
		if _, active := certmagic.GetACMEChallenge(name); active {
			m.track.seen(name, "http-01")
		}
		own.ServeHTTP(w, r)
	})
}

const challengePrefix = "/.well-known/acme-challenge/"

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
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

// Close stops renewals, copies and the peer channel.
func (m *Manager) Close() {
	m.mu.Lock()
	select {
	case <-m.stop:
		m.mu.Unlock()
		return
	default:
	}
	close(m.stop)
	for _, ln := range m.peerLns {
		ln.Close()
	}
	m.mu.Unlock()
	<-m.done
	m.cache.Stop()
}
