package dns

import (
	"context"
	"fmt"
	"time"

	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	mdns "github.com/miekg/dns"
)

// rfc2136Provider is libdns/rfc2136 (any DNS server that takes RFC 2136
// updates signed with TSIG) with a diagnosis when the zone cannot be
// read: a refused zone transfer looks the same whether the key is wrong
// or the server does not serve the zone, so hoist asks the server.
type rfc2136Provider struct {
	rfc2136.Provider
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
