package dns

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/libdns/libdns"
	"github.com/libdns/route53"
)

// route53Provider is libdns/route53 with its AWS configuration checked
// first: the provider ends the process (log.Fatalf) when the SDK cannot
// load it, a named profile that does not exist for example.
type route53Provider struct {
	route53.Provider

	once sync.Once
	err  error
}

func (p *route53Provider) check(ctx context.Context) error {
	p.once.Do(func() {
		var opts []func(*config.LoadOptions) error
		if p.Profile != "" {
			opts = append(opts, config.WithSharedConfigProfile(p.Profile))
		}
		if p.Region != "" {
			opts = append(opts, config.WithRegion(p.Region))
		}
		if _, err := config.LoadDefaultConfig(ctx, opts...); err != nil {
			p.err = fmt.Errorf("load AWS configuration: %w", err)
		}
	})
	return p.err
}

// GetRecords lists the zone's records.
func (p *route53Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Provider.GetRecords(ctx, zone)
}

// AppendRecords adds records to their record sets.
func (p *route53Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Provider.AppendRecords(ctx, zone, recs)
}

// DeleteRecords removes records from their record sets.
func (p *route53Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Provider.DeleteRecords(ctx, zone, recs)
}
