package dns

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	mdns "github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/usererr"
)

// rfc2136Provider is libdns/rfc2136 (any DNS server that takes RFC 2136
// updates signed with TSIG) with a diagnosis when the zone cannot be
// read: a refused zone transfer looks the same whether the key is wrong
// or the server does not serve the zone, so hoist asks the server.
type rfc2136Provider struct {
	rfc2136.Provider
}

// tsigAlgorithms are the TSIG algorithms miekg/dns signs with.
var tsigAlgorithms = []string{mdns.HmacSHA256, mdns.HmacSHA512, mdns.HmacSHA384, mdns.HmacSHA224, mdns.HmacSHA1, mdns.HmacMD5}

// check refuses a TSIG secret that is not base64 and an algorithm that
// is not one, which a server answers only with BADKEY or BADSIG, as it
// would a wrong key; no key_alg is hmac-sha256, tsig-keygen's default.
func (p *rfc2136Provider) check() error {
	if p.KeyAlg == "" {
		p.KeyAlg = "hmac-sha256"
	}
	alg := mdns.Fqdn(strings.ToLower(p.KeyAlg))
	if !slices.Contains(tsigAlgorithms, alg) {
		var names []string
		for _, a := range tsigAlgorithms {
			names = append(names, strings.TrimSuffix(a, "."))
		}
		return usererr.New("rfc2136: key_alg %q is not a TSIG algorithm", p.KeyAlg).
			WithHint("write one of %s in dns.settings.key_alg (or RFC2136_KEY_ALG), as the key's algorithm in the server's key file", strings.Join(names, ", "))
	}
	if _, err := base64.StdEncoding.DecodeString(p.Key); err != nil {
		return usererr.New("rfc2136: the TSIG secret (RFC2136_KEY) is not base64: %v", err).
			WithHint("copy the secret \"...\" of the server's key file (tsig-keygen prints it), whole")
	}
	return nil
}

// GetRecords reads the zone by a signed transfer (AXFR).
func (p *rfc2136Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	recs, err := p.Provider.GetRecords(ctx, zone)
	if err != nil {
		return nil, p.diagnose(ctx, zone, err)
	}
	return recs, nil
}

// diagnose asks the server, unsigned, for the zone's SOA: a server that
// does not answer for the zone with authority does not serve it;
// otherwise the key was refused.
func (p *rfc2136Provider) diagnose(ctx context.Context, zone string, err error) error {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(zone), mdns.TypeSOA)
	c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
	in, _, qerr := c.ExchangeContext(ctx, m, p.Server)
	switch {
	case qerr != nil:
		return err // unreachable: the transfer's own error says so
	case in.Rcode != mdns.RcodeSuccess || !in.Authoritative || len(in.Answer) == 0:
		return fmt.Errorf("%s does not serve zone %s (it answers %s for its SOA): %w", p.Server, zone, rcodeText(in), err)
	}
	return fmt.Errorf("%s refused the TSIG key %q (%s): a wrong key or algorithm, or a key the zone does not allow to transfer (allow-transfer) and update (update-policy): %w",
		p.Server, p.KeyName, p.KeyAlg, err)
}

func rcodeText(in *mdns.Msg) string {
	if in.Rcode == mdns.RcodeSuccess && !in.Authoritative {
		return "without authority"
	}
	if in.Rcode == mdns.RcodeSuccess {
		return "no record"
	}
	return mdns.RcodeToString[in.Rcode]
}
