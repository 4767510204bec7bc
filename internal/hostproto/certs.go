package hostproto

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/dns"
)

// The certificates' part of the protocol: the plan setup sends a host
// (Spec.Certs) and what the host's proxy reports of each name's
// certificate (RouteStatus). internal/certs obtains and serves them with
// these types.

// A CertPlan says how one app's names get their certificates on one host.
// hoist setup writes it, one file per app in the proxy's plan directory
// (0600: it may hold DNS credentials), and the proxy reads it when a
// route asks for a name and every minute after. Without a plan, a name
// is obtained on the host by HTTP-01 or TLS-ALPN-01, as before.
//
// With several hosts, one of them (the issuer) obtains and renews each
// name's certificate, once, and the others copy it from the issuer over
// the peer channel (peer.go): a TLS connection on which both ends prove
// they hold the app's peer secret.
type CertPlan struct {
	App   string         `json:"app"`
	Names []CertPlanName `json:"names"`
	// DNS solves DNS-01 challenges. Only the issuer gets it.
	DNS *DNSPlan `json:"dns,omitempty"`
	// PeerSecret is shared by the app's hosts (base64); "" with one host.
	PeerSecret string `json:"peer_secret,omitempty"`
	// Peers are the peer addresses (host:port) of the app's hosts in the
	// order they take over obtaining the names when the hosts before
	// them are gone, the issuer first; Self is this host's among them.
	// The issuer tells the others when it renews (follow.go).
	Peers []string `json:"peers,omitempty"`
	Self  string   `json:"self,omitempty"`
	// Listen are the addresses (host:port) the issuer's peer channel
	// listens on (the copiers' too, for word of a renewal and a
	// takeover): the one its peers dial, and the one hoist's SSH
	// connection reached, which is the host's own when the other sits
	// behind a NAT. Those that are not addresses of the host are left
	// out; the channel never listens on every interface.
	Listen []string `json:"listen,omitempty"`
}

// CertPlanName is how one name's certificate is got.
type CertPlanName struct {
	Name string `json:"name"`
	// Challenge is "http-01" (HTTP-01, or TLS-ALPN-01 when no peer
	// copies the certificate) or "dns-01".
	Challenge string `json:"challenge"`
	// From is the issuer's peer address (host:port) when another host
	// obtains the certificate and this one copies it; "" when this host
	// obtains it.
	From string `json:"from,omitempty"`
	// Peers copy this host's certificate: the issuer answers their
	// HTTP-01 challenges' relays and keeps TLS-ALPN-01 off, which a peer
	// could not answer.
	Peers bool `json:"peers,omitempty"`
}

// DNSPlan is the app's DNS provider for DNS-01.
type DNSPlan struct {
	Provider    string          `json:"provider"`
	Zone        string          `json:"zone"`
	Credentials dns.Credentials `json:"credentials"`
	// Resolvers check that a challenge record is visible.
	Resolvers []string `json:"resolvers,omitempty"`
}

// Challenge types.
const (
	ChallengeHTTP01 = "http-01"
	ChallengeDNS01  = "dns-01"
)

// Validate checks a plan before it is written or used.
func (p *CertPlan) Validate() error {
	if p.App == "" || strings.ContainsAny(p.App, "/.\\ ") {
		return fmt.Errorf("certificate plan: invalid app %q", p.App)
	}
	for _, n := range p.Names {
		switch {
		case n.Challenge != ChallengeHTTP01 && n.Challenge != ChallengeDNS01:
			return fmt.Errorf("certificate plan of %s: %s: unknown challenge %q", p.App, n.Name, n.Challenge)
		case n.Challenge == ChallengeDNS01 && n.From == "" && p.DNS == nil:
			return fmt.Errorf("certificate plan of %s: %s needs DNS-01 and no DNS provider is given", p.App, n.Name)
		case n.From != "" && p.PeerSecret == "":
			return fmt.Errorf("certificate plan of %s: %s is copied from %s without a peer secret", p.App, n.Name, n.From)
		}
	}
	for _, a := range p.Listen {
		h, _, err := net.SplitHostPort(a)
		if err != nil || net.ParseIP(h) == nil || net.ParseIP(h).IsUnspecified() {
			return fmt.Errorf("certificate plan of %s: the peer channel cannot listen on %q: not an address of one host", p.App, a)
		}
	}
	if p.DNS != nil {
		if _, err := dns.New(p.DNS.Provider, p.DNS.Credentials); err != nil {
			return fmt.Errorf("certificate plan of %s: %w", p.App, err)
		}
	}
	return nil
}

// CertStatus is what the proxy reports about one name's certificate.
type CertStatus struct {
	// Issuer is the CA that signed it (its common name).
	Issuer string `json:"issuer,omitempty"`
	// Expires is when it expires.
	Expires time.Time `json:"expires,omitzero"`
	// ObtainedBy is how it came in: "http-01", "tls-alpn-01", "dns-01",
	// "internal CA", or "copied from HOST:PORT (dns-01 there)".
	ObtainedBy string    `json:"obtained_by,omitempty"`
	ObtainedAt time.Time `json:"obtained_at,omitzero"`
	// RenewAt is when renewal is due: when this host renews it, or, for
	// a copy, when its issuer does (the issuer tells the copier, which
	// also asks then).
	RenewAt time.Time `json:"renew_at,omitzero"`
	// From is the issuer's peer address when this host copies it.
	From string `json:"from,omitempty"`
	// Error is the last attempt's failure, if it failed.
	Error string `json:"error,omitempty"`
}
