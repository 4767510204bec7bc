package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/dns"
)

var (
	zoneName  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$`)
	ownerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// validateDNS checks the dns section and the proxy's challenges, which
// depend on it.
func (c *Config) validateDNS() error {
	d := &c.DNS
	if err := d.TTL.parse(); err != nil {
		return errAt("$.dns.ttl", "%v", err)
	}
	if !d.On() {
		if d.Zone != "" || d.Owner != "" || d.Records != nil || len(d.Addresses) > 0 || len(d.Settings) > 0 || len(d.Resolvers) > 0 {
			return errAt("$.dns.provider", "missing; name the DNS provider: %s", strings.Join(dns.Providers(), ", "))
		}
	} else if err := c.validateDNSProvider(); err != nil {
		return err
	}
	return c.validateChallenges()
}

func (c *Config) validateDNSProvider() error {
	d := &c.DNS
	if err := dns.CheckSettings(d.Provider, d.Settings); err != nil {
		var se *dns.SettingError
		if errors.As(err, &se) {
			return errAt("$.dns.settings."+se.Key, "%s", se.Msg)
		}
		return errAt("$.dns.provider", "%v", err)
	}
	d.Zone = strings.TrimSuffix(strings.ToLower(d.Zone), ".")
	if d.Zone == "" {
		return errAt("$.dns.zone", "missing; the zone that holds the names of proxy.hosts, like example.com")
	}
	if !zoneName.MatchString(d.Zone) {
		return errAt("$.dns.zone", "%q is not a DNS zone name", d.Zone)
	}
	if d.TTL.Duration < 1e9 {
		return errAt("$.dns.ttl", "must be at least 1s")
	}
	if d.Owner != "" && !ownerName.MatchString(d.Owner) {
		return errAt("$.dns.owner", "%q: use letters, digits, dots, dashes and underscores", d.Owner)
	}
	for _, h := range sortedKeys(d.Addresses) {
		for i, a := range d.Addresses[h] {
			if _, err := netip.ParseAddr(a); err != nil {
				return errAt(fmt.Sprintf("$.dns.addresses.%s[%d]", h, i), "%q is not an IP address", a)
			}
		}
	}
	for i, r := range d.Resolvers {
		host := r
		if h, _, err := net.SplitHostPort(r); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, " /") {
			return errAt(fmt.Sprintf("$.dns.resolvers[%d]", i), "%q is not host or host:port", r)
		}
	}
	if d.KeepsRecords() {
		for i, h := range c.Proxy.Hosts {
			if !dns.InZone(h, d.Zone) {
				msg := "set dns.zone to a zone that holds every name of proxy.hosts, or dns.records: false to keep the names' records yourself"
				if c.Proxy.TLS.Mode == TLSACME && c.Proxy.Challenges[h] != ChallengeHTTP && c.Proxy.Challenge != ChallengeHTTP {
					// With records: false, auto would choose DNS-01, whose
					// record must be in the zone too.
					msg += fmt.Sprintf(" and `challenges: {%s: http-01}` under proxy, since its DNS-01 record could not go in the zone either", h)
				}
				return errAt(fmt.Sprintf("$.proxy.hosts[%d]", i), "%s is not in dns.zone %s, where hoist keeps the names' records: %s", h, d.Zone, msg)
			}
			// Names point at a balancer by CNAME, which the zone's apex
			// cannot hold beside its SOA and NS records.
			if c.Infra.Balancer == BalancerALB && strings.TrimSuffix(strings.ToLower(h), ".") == d.Zone {
				return errAt(fmt.Sprintf("$.proxy.hosts[%d]", i), "%s is the zone's apex, which cannot point at the balancer by CNAME: serve www.%s (and redirect the apex elsewhere), or use hoist's proxy on each host (infra.balancer: none)", h, d.Zone)
			}
		}
	}
	return nil
}

// validateChallenges checks proxy.challenge(s) and that each name's
// challenge can work.
func (c *Config) validateChallenges() error {
	p := &c.Proxy
	switch p.Challenge {
	case "", ChallengeAuto, ChallengeHTTP, ChallengeDNS:
	default:
		return errAt("$.proxy.challenge", "%q is not a challenge: write auto, http-01 or dns-01", p.Challenge)
	}
	for _, name := range sortedKeys(p.Challenges) {
		if !slices.Contains(p.Hosts, name) {
			return errAt("$.proxy.challenges."+name, "%s is not one of proxy.hosts", name)
		}
		if ch := p.Challenges[name]; ch != ChallengeHTTP && ch != ChallengeDNS {
			return errAt("$.proxy.challenges."+name, "%q is not a challenge: write http-01 or dns-01", ch)
		}
	}
	if p.TLS.Mode != TLSACME {
		if p.Challenge != "" || len(p.Challenges) > 0 {
			return errAt("$.proxy.challenge", "challenges are how an ACME CA checks a name: they need tls: acme")
		}
		return nil
	}
	for i, h := range p.Hosts {
		at := fmt.Sprintf("$.proxy.hosts[%d]", i)
		switch ch := c.ChallengeFor(h); {
		case ch == ChallengeHTTP && strings.HasPrefix(h, "*."):
			return errAt(at, "%s: a wildcard name can only be checked by DNS-01, not HTTP-01", h)
		case ch == ChallengeDNS && !c.DNS.On():
			return errAt(at, "%s needs the DNS-01 challenge, which needs a DNS provider: add a dns section (docs/dns.md)", h)
		case ch == ChallengeDNS && !dns.InZone(h, c.DNS.Zone):
			return errAt(at, "%s is not in dns.zone %s, where the DNS-01 challenge's record would go", h, c.DNS.Zone)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
