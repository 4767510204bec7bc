package dns

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	dnsimpleapi "github.com/dnsimple/dnsimple-go/v8/dnsimple"
	"github.com/libdns/dnsimple"
	"github.com/libdns/libdns"
)

// dnsimpleProvider takes libdns/dnsimple's settings (api_access_token,
// account_id, api_url) but makes its calls itself: libdns/dnsimple
// v0.5.0 reads only the first page of a zone, deletes the first record
// whose name merely contains the one asked for whatever its value, and
// panics when the token is refused. hoist must never delete a record it
// did not mean to, so it lists every page and deletes by exact name,
// type and value.
type dnsimpleProvider struct {
	dnsimple.Provider // for its fields only

	mu      sync.Mutex
	client  *dnsimpleapi.Client
	account string
}

func (p *dnsimpleProvider) init(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return nil
	}
	c := dnsimpleapi.NewClient(dnsimpleapi.StaticTokenHTTPClient(context.Background(), p.APIAccessToken))
	c.UserAgent = "hoist"
	if p.APIURL != "" {
		c.BaseURL = p.APIURL
	}
	account := p.AccountID
	if account == "" {
		who, err := c.Identity.Whoami(ctx)
		if err != nil {
			return fmt.Errorf("whoami: %w", err)
		}
		if who.Data == nil || who.Data.Account == nil {
			return fmt.Errorf("the token is a user token, which can reach several accounts: set DNSIMPLE_ACCOUNT_ID (or dns.settings.account_id)")
		}
		account = strconv.FormatInt(who.Data.Account.ID, 10)
	}
	p.client, p.account = c, account
	return nil
}

// list returns every record of the zone that opts selects, page by page.
func (p *dnsimpleProvider) list(ctx context.Context, zone string, opts dnsimpleapi.ZoneRecordListOptions) ([]dnsimpleapi.ZoneRecord, error) {
	var out []dnsimpleapi.ZoneRecord
	perPage := 100
	opts.PerPage = &perPage
	for page := 1; ; page++ {
		opts.Page = &page
		resp, err := p.client.Zones.ListRecords(ctx, p.account, zone, &opts)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Data...)
		if resp.Pagination == nil || page >= resp.Pagination.TotalPages {
			return out, nil
		}
	}
}

// GetRecords lists the zone's records.
func (p *dnsimpleProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	if err := p.init(ctx); err != nil {
		return nil, err
	}
	recs, err := p.list(ctx, normName(zone), dnsimpleapi.ZoneRecordListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]libdns.Record, 0, len(recs))
	for _, r := range recs {
		name := r.Name
		if name == "" {
			name = "@"
		}
		out = append(out, libdns.RR{Name: name, Type: r.Type, Data: r.Content, TTL: time.Duration(r.TTL) * time.Second})
	}
	return out, nil
}

// AppendRecords creates each record.
func (p *dnsimpleProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := p.init(ctx); err != nil {
		return nil, err
	}
	var made []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		name := dnsimpleName(rr.Name)
		if _, err := p.client.Zones.CreateRecord(ctx, p.account, normName(zone), dnsimpleapi.ZoneRecordAttributes{
			Type: rr.Type, Name: &name, Content: rr.Data, TTL: int(rr.TTL.Seconds()),
		}); err != nil {
			return made, err
		}
		made = append(made, rec)
	}
	return made, nil
}

// DeleteRecords deletes the records that match each one exactly: name,
// type and value.
func (p *dnsimpleProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := p.init(ctx); err != nil {
		return nil, err
	}
	var deleted []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		name := dnsimpleName(rr.Name)
		found, err := p.list(ctx, normName(zone), dnsimpleapi.ZoneRecordListOptions{Name: &name, Type: &rr.Type})
		if err != nil {
			return deleted, err
		}
		for _, r := range found {
			if r.Name != name || r.Type != rr.Type || normValue(r.Type, unquote(r.Content)) != normValue(rr.Type, unquote(rr.Data)) {
				continue
			}
			if _, err := p.client.Zones.DeleteRecord(ctx, p.account, normName(zone), r.ID); err != nil {
				return deleted, err
			}
			deleted = append(deleted, rec)
		}
	}
	return deleted, nil
}

// dnsimpleName is a libdns name as DNSimple writes it: "" for the zone.
func dnsimpleName(n string) string {
	if n == "@" {
		return ""
	}
	return n
}

func unquote(s string) string { return strings.Trim(s, `"`) }
