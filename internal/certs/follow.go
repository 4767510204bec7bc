package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// follow is a name whose certificate this host copies from its issuer.
//
// A copy follows the issuer's renewals: the issuer tells its peers when
// it renews (GET /v1/renewed/{name} on each peer's channel), and the
// copier asks at the copy's own renewal time anyway, and then every
// PeerRetry until the renewed certificate is in, whichever comes first;
// between those, every PeerRefresh. When the issuer does not answer and
// the copy is due, the other hosts before this one in the plan's Peers
// are asked, in order: one of them may have taken over. When none
// answers, this host takes over: it obtains and renews the name itself
// (by HTTP-01; DNS-01's credentials are on the issuer alone) and tells
// the others, until a host before it in Peers issues again.
type follow struct {
	planFrom, app, secret string
	challenge             string
	// from is the issuer copied from now: the plan's, or a host that
	// took over.
	from string
	// candidates are the hosts that obtain the name before this one
	// does, in the order they take over; position is this host's place
	// in that order (0: it never takes over).
	candidates []string
	position   int
	next       time.Time // when to look at the issuer's again
	err        error     // the last copy's failure
	copied     time.Time // when the copy served now was taken
	failures   int       // asks in a row that failed
	over       bool      // this host took over obtaining the name
}

// copyTag marks the certificates in the cache that are copies.
const copyTag = "hoist-copy"

// takeoverAfter is how many failed asks in a row, times this host's
// position, make it take over a name whose copy is due: the first in
// line takes over first, and the others find it there.
const takeoverAfter = 3

// followLocked starts copying name's certificate from pn's issuer, and
// serves the copy kept on disk meanwhile.
func (m *Manager) followLocked(name string, pn planned) {
	f := m.follows[name]
	cands, pos := takeoverOrder(pn.plan, pn.From)
	if f != nil && f.planFrom == pn.From && f.secret == pn.plan.PeerSecret && slices.Equal(f.candidates, cands) {
		return
	}
	m.follows[name] = &follow{planFrom: pn.From, from: pn.From, app: pn.plan.App, secret: pn.plan.PeerSecret,
		challenge: pn.Challenge, candidates: cands, position: pos}
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

// takeoverOrder are the hosts that obtain a name before this one, the
// plan's issuer first, and this host's place after them: 0 when the
// plan names no order this host is in.
func takeoverOrder(p *hostproto.CertPlan, from string) ([]string, int) {
	i := slices.Index(p.Peers, p.Self)
	if p.Self == "" || i < 0 {
		return []string{from}, 0
	}
	cands := slices.Clone(p.Peers[:i])
	if !slices.Contains(cands, from) {
		cands = append([]string{from}, cands...)
	}
	return cands, len(cands)
}

// tookOverLocked reports whether this host took over obtaining name.
func (m *Manager) tookOverLocked(name string) bool {
	f := m.follows[name]
	return f != nil && f.over
}

func (m *Manager) tookOver(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tookOverLocked(name)
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

// refreshCopies asks the issuers for the copies that are due, one
// refresh at a time.
func (m *Manager) refreshCopies() {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
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
		if f.over {
			m.maybeStepDown(name, f)
			continue
		}
		from := f.from
		leaf, err := m.copyFrom(name, from, f)
		if err != nil && m.copyDue(name) {
			// The issuer does not answer and the copy needs it: a host
			// before this one may have taken over.
			for _, c := range f.candidates {
				if c == f.from {
					continue
				}
				if l, cerr := m.copyFrom(name, c, f); cerr == nil {
					leaf, from, err = l, c, nil
					break
				}
			}
		}
		takeover := false
		m.mu.Lock()
		if cur := m.follows[name]; cur != nil && cur.planFrom == f.planFrom && !cur.over {
			now := time.Now()
			cur.err = err
			if err == nil {
				cur.from, cur.failures = from, 0
				cur.next = now.Add(m.opts.PeerRefresh)
				if at := m.renewalTime(leaf); at.Before(cur.next) {
					// Asked at the copy's own renewal time, and then until the
					// issuer has renewed.
					cur.next = at
				}
				if !cur.next.After(now) {
					cur.next = now.Add(m.opts.PeerRetry)
				}
			} else {
				cur.failures++
				cur.next = now.Add(m.opts.PeerRetry)
				if cur.position > 0 && cur.challenge == hostproto.ChallengeHTTP01 && cur.failures >= takeoverAfter*cur.position && m.copyDue(name) {
					cur.over, takeover = true, true
				}
			}
		}
		m.mu.Unlock()
		if err != nil {
			m.logger.Warn("copy certificate", zap.String("name", name), zap.String("from", from), zap.Error(err))
		}
		if takeover {
			m.takeOver(name, f)
		}
	}
}

// renewalTime is when a certificate is due for renewal: when a part of
// its life, the renewal window ratio, is left.
func (m *Manager) renewalTime(leaf *x509.Certificate) time.Time {
	ratio := m.opts.RenewalWindowRatio
	if ratio <= 0 {
		ratio = certmagic.DefaultRenewalWindowRatio
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-time.Duration(float64(life) * ratio))
}

// copyDue reports whether the certificate served for name is due for
// renewal, or there is none.
func (m *Manager) copyDue(name string) bool {
	c, ok := m.served(name)
	return !ok || !m.renewalTime(c.Leaf).After(time.Now())
}

// takeOver has this host obtain name itself, since no host before it
// answers for it; the copy is served until the new certificate is in.
func (m *Manager) takeOver(name string, f follow) {
	m.logger.Warn("taking over the certificate: no host before this one answers for it",
		zap.String("name", name), zap.Strings("asked", f.candidates))
	m.mu.Lock()
	cfg, err := m.configForLocked(name)
	m.mu.Unlock()
	if err == nil {
		err = cfg.ManageAsync(context.Background(), []string{name})
	}
	if err != nil {
		m.logger.Warn("take over the certificate", zap.String("name", name), zap.Error(err))
		m.mu.Lock()
		if cur := m.follows[name]; cur != nil {
			cur.over, cur.err = false, err
		}
		m.mu.Unlock()
	}
}

// maybeStepDown asks the hosts before this one whether one obtains
// name again; the first that does is followed once more.
func (m *Manager) maybeStepDown(name string, f follow) {
	for _, c := range f.candidates {
		if _, err := peerGet(context.Background(), c, f.app, f.secret, certPath(name)); err != nil {
			continue
		}
		m.mu.Lock()
		if cur := m.follows[name]; cur != nil && cur.over {
			cur.over, cur.from, cur.failures, cur.next = false, c, 0, time.Time{}
		}
		m.mu.Unlock()
		m.logger.Info("a host before this one obtains the certificate again: copying it", zap.String("name", name), zap.String("from", c))
		m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: name}})
		return
	}
	m.mu.Lock()
	if cur := m.follows[name]; cur != nil {
		cur.next = time.Now().Add(m.opts.PeerRefresh)
	}
	m.mu.Unlock()
}

// obtainedHere is told of a certificate this host obtained or renewed:
// a name it took over stops serving its copy, and the hosts that copy
// the name are told to fetch it.
func (m *Manager) obtainedHere(name string) {
	m.mu.Lock()
	over := m.tookOverLocked(name)
	pn, ok := m.plans.byName[name]
	m.mu.Unlock()
	if over {
		go func() {
			// certmagic caches the certificate just after it says so.
			for range 100 {
				for _, c := range m.cache.AllMatchingCertificates(name) {
					if !c.HasTag(copyTag) && slices.Contains(c.Names, name) {
						m.dropCopies(name)
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	if !ok || pn.plan.PeerSecret == "" || (pn.From != "" && !over) {
		return
	}
	p := pn.plan
	for _, peer := range p.Peers {
		if peer == p.Self {
			continue
		}
		go func() {
			for try := range 3 {
				if _, err := peerGet(context.Background(), peer, p.App, p.PeerSecret, renewedPath(name)); err == nil {
					return
				} else if try == 2 {
					m.logger.Warn("tell a peer of a renewed certificate", zap.String("name", name), zap.String("peer", peer), zap.Error(err))
				}
				time.Sleep(2 * time.Second)
			}
		}()
	}
}

// peerRenewed is an issuer telling this host that it renewed name: the
// copy is fetched now. It reports whether this host copies name for app.
func (m *Manager) peerRenewed(app, name string) bool {
	m.mu.Lock()
	f := m.follows[name]
	ok := f != nil && f.app == app && !f.over
	if ok {
		f.next = time.Time{}
	}
	m.mu.Unlock()
	if ok {
		go m.refreshCopies()
	}
	return ok
}

func renewedPath(name string) string { return "/v1/renewed/" + url.PathEscape(name) }

// copyFrom fetches name's certificate from the issuer at from and
// serves it, if it is not the one served already; it returns the
// certificate served.
func (m *Manager) copyFrom(name, from string, f follow) (*x509.Certificate, error) {
	body, err := peerGet(context.Background(), from, f.app, f.secret, certPath(name))
	if err != nil {
		return nil, err
	}
	var pc peerCert
	if err := json.Unmarshal(body, &pc); err != nil {
		return nil, fmt.Errorf("peer %s: %w", from, err)
	}
	leaf, err := checkCopy(name, pc)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", from, err)
	}
	if cur, ok := m.served(name); ok && cur.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		return leaf, nil
	}
	b, _ := json.Marshal(pc)
	if err := os.MkdirAll(filepath.Dir(m.copyPath(name)), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(m.copyPath(name), b, 0o600); err != nil {
		return nil, err
	}
	if err := m.serveCopy(name, pc); err != nil {
		return nil, err
	}
	by := "copied from " + from
	if pc.ObtainedBy != "" {
		by += " (" + pc.ObtainedBy + " there)"
	}
	m.track.got(name, obtained{By: by, At: time.Now().UTC(), From: from})
	return leaf, nil
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
	from := pn.From
	if f := m.follows[name]; ok && f != nil && f.planFrom == pn.From {
		from = f.from // a host that took over
		if f.over {
			from = "" // this host: it answers itself
		}
	}
	m.mu.Unlock()
	if !ok || from == "" {
		return false
	}
	body, err := peerGet(r.Context(), from, pn.plan.App, pn.plan.PeerSecret, challengePath(name, token))
	if err != nil {
		m.logger.Warn("relay HTTP-01 challenge", zap.String("name", name), zap.String("from", from), zap.Error(err))
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

// Status reports name's certificate; Expires is zero while there is
// none.
func (m *Manager) Status(name string) hostproto.CertStatus {
	var st hostproto.CertStatus
	m.mu.Lock()
	if f := m.follows[name]; f != nil && !f.over {
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
