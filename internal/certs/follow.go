package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// follow is a name whose certificate this host copies from its issuer.
type follow struct {
	from, app, secret string
	next              time.Time // when to look at the issuer's again
	err               error     // the last copy's failure
	copied            time.Time // when the copy served now was taken
}

// copyTag marks the certificates in the cache that are copies.
const copyTag = "hoist-copy"

// followLocked starts copying name's certificate from pn's issuer, and
// serves the copy kept on disk meanwhile.
func (m *Manager) followLocked(name string, pn planned) {
	f := m.follows[name]
	if f != nil && f.from == pn.From && f.secret == pn.plan.PeerSecret {
		return
	}
	m.follows[name] = &follow{from: pn.From, app: pn.plan.App, secret: pn.plan.PeerSecret}
	m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: name}})
	if _, ok := m.served(name); ok {
		return
	}
	if b, err := os.ReadFile(m.copyPath(name)); err == nil {
		var pc peerCert
		if json.Unmarshal(b, &pc) == nil {
			if err := m.serveCopy(name, pc); err != nil {
				m.logger.Warn("stored copy", zap.String("name", name), zap.Error(err))
			}
		}
	}
}

// serveCopy puts a copy in the cache in place of what was served for
// name. (certmagic's CacheUnmanagedCertificatePEMBytesAsReplacement
// deadlocks in v0.25.6: it read-locks the cache it holds locked.)
func (m *Manager) serveCopy(name string, pc peerCert) error {
	hash, err := m.http.CacheUnmanagedCertificatePEMBytes(context.Background(), []byte(pc.Chain), []byte(pc.Key), []string{copyTag})
	if err != nil {
		return err
	}
	var old []string
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Hash() != hash && slices.Contains(c.Names, name) {
			old = append(old, c.Hash())
		}
	}
	m.cache.Remove(old)
	return nil
}

// dropCopies removes copied certificates of a name this host now
// obtains itself.
func (m *Manager) dropCopies(name string) {
	var hashes []string
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.HasTag(copyTag) && slices.Contains(c.Names, name) {
			hashes = append(hashes, c.Hash())
		}
	}
	if len(hashes) > 0 {
		m.cache.Remove(hashes)
	}
}

// refreshCopies asks the issuers for the copies that are due.
func (m *Manager) refreshCopies() {
	now := time.Now()
	m.mu.Lock()
	due := map[string]follow{}
	for n, f := range m.follows {
		if !f.next.After(now) {
			due[n] = *f
		}
	}
	m.mu.Unlock()
	for name, f := range due {
		err := m.copyFrom(name, f)
		m.mu.Lock()
		if cur := m.follows[name]; cur != nil && cur.from == f.from {
			cur.err = err
			cur.next = time.Now().Add(m.opts.PeerRefresh)
			if err != nil {
				cur.next = time.Now().Add(m.opts.PeerRetry)
			}
		}
		m.mu.Unlock()
		if err != nil {
			m.logger.Warn("copy certificate", zap.String("name", name), zap.String("from", f.from), zap.Error(err))
		}
	}
}

// copyFrom fetches name's certificate from its issuer and serves it, if
// it is not the one served already.
func (m *Manager) copyFrom(name string, f follow) error {
	body, err := peerGet(context.Background(), f.from, f.app, f.secret, certPath(name))
	if err != nil {
		return err
	}
	var pc peerCert
	if err := json.Unmarshal(body, &pc); err != nil {
		return fmt.Errorf("peer %s: %w", f.from, err)
	}
	leaf, err := checkCopy(name, pc)
	if err != nil {
		return fmt.Errorf("peer %s: %w", f.from, err)
	}
	if cur, ok := m.served(name); ok && cur.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		return nil
	}
	b, _ := json.Marshal(pc)
	if err := os.MkdirAll(filepath.Dir(m.copyPath(name)), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(m.copyPath(name), b, 0o600); err != nil {
		return err
	}
	if err := m.serveCopy(name, pc); err != nil {
		return err
	}
	by := "copied from " + f.from
	if pc.ObtainedBy != "" {
		by += " (" + pc.ObtainedBy + " there)"
	}
	m.track.got(name, obtained{By: by, At: time.Now().UTC(), From: f.from})
	return nil
}

// checkCopy refuses a copy that is not a live certificate for name with
// its key.
func checkCopy(name string, pc peerCert) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair([]byte(pc.Chain), []byte(pc.Key))
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	switch {
	case !slices.Contains(leaf.DNSNames, name):
		return nil, fmt.Errorf("the certificate is for %s, not %s", strings.Join(leaf.DNSNames, ", "), name)
	case time.Now().After(leaf.NotAfter):
		return nil, fmt.Errorf("the certificate for %s expired at %s", name, leaf.NotAfter)
	}
	return leaf, nil
}

func (m *Manager) copyPath(name string) string {
	return filepath.Join(m.opts.Storage, "hoist", "copies", strings.ReplaceAll(name, "*", "_wildcard_")+".json")
}

// relayChallenge answers an HTTP-01 challenge for a name this host
// copies with the issuer's key authorization, and reports whether it
// did. The CA may ask any host the name points at.
//
// It goes by the plan alone, read again first: the CA may ask before the
// app's route is on this host, right after a setup that changed the
// peer secret.
func (m *Manager) relayChallenge(w http.ResponseWriter, r *http.Request, name, token string) bool {
	m.mu.Lock()
	if time.Since(m.readAt) > time.Second { // anyone may ask: read at most once a second
		m.reloadLocked()
	}
	pn, ok := m.plans.byName[name]
	m.mu.Unlock()
	if !ok || pn.From == "" {
		return false
	}
	body, err := peerGet(r.Context(), pn.From, pn.plan.App, pn.plan.PeerSecret, challengePath(name, token))
	if err != nil {
		m.logger.Warn("relay HTTP-01 challenge", zap.String("name", name), zap.String("from", pn.From), zap.Error(err))
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(body)
	return true
}

// served is the certificate served for exactly name (a wildcard name's
// own), the one that lasts longest.
func (m *Manager) served(name string) (certmagic.Certificate, bool) {
	var best certmagic.Certificate
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && slices.Contains(c.Names, name) && (best.Leaf == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter)) {
			best = c
		}
	}
	return best, best.Leaf != nil
}

// Status is what the proxy reports about one name's certificate.
type Status struct {
	// Issuer is the CA that signed it (its common name).
	Issuer string `json:"issuer,omitempty"`
	// Expires is when it expires.
	Expires time.Time `json:"expires,omitzero"`
	// ObtainedBy is how it came in: "http-01", "tls-alpn-01", "dns-01",
	// "internal CA", or "copied from HOST:PORT (dns-01 there)".
	ObtainedBy string    `json:"obtained_by,omitempty"`
	ObtainedAt time.Time `json:"obtained_at,omitzero"`
	// RenewAt is when renewal is due: when this host renews it, or, for
	// a copy, when its issuer does (the copy follows within the peer
	// refresh interval).
	RenewAt time.Time `json:"renew_at,omitzero"`
	// From is the issuer's peer address when this host copies it.
	From string `json:"from,omitempty"`
	// Error is the last attempt's failure, if it failed.
	Error string `json:"error,omitempty"`
}

// Status reports name's certificate; Expires is zero while there is
// none.
func (m *Manager) Status(name string) Status {
	var st Status
	m.mu.Lock()
	if f := m.follows[name]; f != nil {
		st.From = f.from
		if f.err != nil {
			st.Error = f.err.Error()
		}
	}
	m.mu.Unlock()
	if st.Error == "" {
		st.Error = m.track.failure(name)
	}
	c, ok := m.served(name)
	if !ok {
		return st
	}
	ob := m.track.get(name)
	st.Issuer, st.Expires = c.Leaf.Issuer.CommonName, c.Leaf.NotAfter
	st.ObtainedBy, st.ObtainedAt = ob.By, ob.At
	ratio := m.opts.RenewalWindowRatio
	if ratio <= 0 {
		ratio = certmagic.DefaultRenewalWindowRatio
	}
	life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
	st.RenewAt = c.Leaf.NotAfter.Add(-time.Duration(float64(life) * ratio)).UTC().Truncate(time.Second)
	return st
}
