// Package dns keeps an app's address records at its DNS provider in
// step with its hosts, and gives the edge proxy the same provider for
// DNS-01 challenges.
//
// Providers come through libdns and are chosen by name from a table
// (providers.go); their credentials come from the environment or hoist
// secrets, never from hoist.yml. hoist owns only the records it made:
// beside each name it keeps a TXT record naming the owner (owner.go), the
// way external-dns does, and it refuses to change records it does not
// own unless told to. A Zone reads the zone once, plans what differs
// (plan.go) and applies it in steps ordered so that a run cut short
// leaves only states the next run converges from (apply.go).
package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// Provider is what hoist needs of a libdns provider: read a zone, add
// records, delete exact records. (SetRecords is not used: providers
// differ too much in what it replaces.)
type Provider interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordDeleter
}

// Zone is one DNS zone at one provider, as one hoist owner manages it.
type Zone struct {
	// Provider names the provider in messages (rfc2136, route53...).
	Provider string
	// Name is the zone, like example.com.
	Name string
	// Owner is written in the ownership records: hoist changes only
	// names marked with it.
	Owner string
	// TTL of the records hoist writes. Default 5 minutes.
	TTL time.Duration
	// API is the provider.
	API Provider
}

// DefaultTTL is the TTL of records hoist writes unless told otherwise.
const DefaultTTL = 5 * time.Minute

// Address record types hoist manages.
const (
	TypeA     = "A"
	TypeAAAA  = "AAAA"
	TypeCNAME = "CNAME"
)

var managedTypes = []string{TypeA, TypeAAAA, TypeCNAME}

// Records are the address records at one name: by type, the values
// sorted.
type Records map[string][]string

func (r Records) equal(o Records) bool {
	for _, t := range managedTypes {
		if !slices.Equal(r[t], o[t]) {
			return false
		}
	}
	return true
}

func (r Records) empty() bool {
	for _, t := range managedTypes {
		if len(r[t]) > 0 {
			return false
		}
	}
	return true
}

// String is the records as "A 10.0.0.1 10.0.0.2, AAAA ...".
func (r Records) String() string {
	var parts []string
	for _, t := range managedTypes {
		if len(r[t]) > 0 {
			parts = append(parts, t+" "+strings.Join(r[t], " "))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Want is the address records hoist should keep, by name (lower case,
// no trailing dot).
type Want map[string]Records

// Targets are where an app's names point: its hosts' addresses, or a
// balancer in front of them.
type Targets struct {
	// Addresses of the app's hosts: A records for IPv4, AAAA for IPv6.
	Addresses []netip.Addr
	// Balancer is a DNS name the app's names point at instead (CNAME),
	// when a load balancer fronts the hosts.
	Balancer string
}

// Desired is the records that point each of names at t.
func Desired(names []string, t Targets) (Want, error) {
	w := Want{}
	for _, n := range names {
		name := normName(n)
		r := Records{}
		switch {
		case t.Balancer != "":
			r[TypeCNAME] = []string{fqdn(strings.ToLower(t.Balancer))}
		case len(t.Addresses) == 0:
			return nil, fmt.Errorf("no address to point %s at", name)
		default:
			for _, a := range t.Addresses {
				a = a.Unmap()
				typ := TypeA
				if a.Is6() {
					typ = TypeAAAA
				}
				if !slices.Contains(r[typ], a.String()) {
					r[typ] = append(r[typ], a.String())
				}
			}
		}
		for _, vs := range r {
			slices.SortFunc(vs, compareValues)
		}
		w[name] = r
	}
	return w, nil
}

// compareValues orders addresses numerically, anything else as text.
func compareValues(a, b string) int {
	pa, ea := netip.ParseAddr(a)
	pb, eb := netip.ParseAddr(b)
	if ea == nil && eb == nil {
		return pa.Compare(pb)
	}
	return strings.Compare(a, b)
}

// normName is a name in lower case without a trailing dot.
func normName(n string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".") }

func fqdn(n string) string { return strings.TrimSuffix(n, ".") + "." }

// normValue puts a record's data in the form hoist compares: addresses
// in canonical text, names fully qualified in lower case.
func normValue(typ, data string) string {
	data = strings.TrimSpace(data)
	switch typ {
	case TypeA, TypeAAAA:
		if a, err := netip.ParseAddr(data); err == nil {
			return a.Unmap().String()
		}
	case TypeCNAME:
		return fqdn(strings.ToLower(data))
	}
	return data
}

// InZone reports whether name (or, for *.x, x) is the zone or below it.
func InZone(name, zone string) bool {
	name, zone = normName(strings.TrimPrefix(name, "*.")), normName(zone)
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// relative is name relative to the zone, "@" for the zone itself, as
// libdns records name it.
func (z *Zone) relative(name string) string {
	name, zone := normName(name), normName(z.Name)
	if name == zone {
		return "@"
	}
	return strings.TrimSuffix(name, "."+zone)
}

// absolute is a libdns record name made absolute in the zone.
func (z *Zone) absolute(rel string) string {
	rel = normName(rel)
	if rel == "@" || rel == "" {
		return normName(z.Name)
	}
	return rel + "." + normName(z.Name)
}

func (z *Zone) ttl() time.Duration {
	if z.TTL > 0 {
		return z.TTL
	}
	return DefaultTTL
}

// read lists the zone's records through the provider.
func (z *Zone) read(ctx context.Context) ([]libdns.RR, error) {
	var recs []libdns.Record
	err := z.call(ctx, "read zone", func(ctx context.Context) (err error) {
		recs, err = z.API.GetRecords(ctx, fqdn(z.Name))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]libdns.RR, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			out = append(out, r.RR())
		}
	}
	return out, nil
}
