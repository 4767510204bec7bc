package provision

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/usererr"
)

// pricesJSON is the embedded price table: AWS list prices, with their
// source and the date they were taken. A file given to LoadPrices
// overrides any of it.
//
//go:embed prices.json
var pricesJSON []byte

// Prices is a price table.
type Prices struct {
	Source        string                  `json:"source"`
	AsOf          string                  `json:"as_of"`
	HoursPerMonth float64                 `json:"hours_per_month"`
	Regions       map[string]RegionPrices `json:"regions"`
}

// RegionPrices are one region's prices in USD.
type RegionPrices struct {
	Instances       map[string]float64 `json:"instances"` // per hour, on demand, Linux
	PublicIPv4Hour  float64            `json:"public_ipv4_hour"`
	GP3GBMonth      float64            `json:"gp3_gb_month"`
	ALBHour         float64            `json:"alb_hour"`
	LCUHour         float64            `json:"lcu_hour"`
	HostedZoneMonth float64            `json:"hosted_zone_month"`
}

// LCUAssumed is the balancer's average load in LCUs that the plan
// prices. One LCU is 25 new connections a second, 3,000 active
// connections, 1 GB of traffic an hour or 1,000 rule evaluations a
// second, whichever is highest: a small site stays under it.
const LCUAssumed = 1.0

// LoadPrices returns the embedded table, with file's entries (same
// form, any subset) laid over it when file is not "".
func LoadPrices(file string) (*Prices, error) {
	var p Prices
	if err := json.Unmarshal(pricesJSON, &p); err != nil {
		return nil, fmt.Errorf("embedded prices: %w", err)
	}
	if file == "" {
		return &p, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usererr.Wrap(err, "cannot read the price file")
	}
	var o Prices
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, usererr.Wrap(err, "price file %s", file).WithHint("it has the form of internal/provision/prices.json; docs/provision.md shows it")
	}
	p.overlay(&o, file)
	return &p, nil
}

func (p *Prices) overlay(o *Prices, file string) {
	p.Source = "your price file " + file + " over " + p.Source
	if o.Source != "" {
		p.Source = o.Source + " (" + file + "), over " + p.Source
	}
	if o.AsOf != "" {
		p.AsOf = o.AsOf
	}
	if o.HoursPerMonth > 0 {
		p.HoursPerMonth = o.HoursPerMonth
	}
	for name, r := range o.Regions {
		base := p.Regions[name]
		if base.Instances == nil {
			base.Instances = map[string]float64{}
		}
		for k, v := range r.Instances {
			base.Instances[k] = v
		}
		for _, f := range []struct{ dst, src *float64 }{
			{&base.PublicIPv4Hour, &r.PublicIPv4Hour}, {&base.GP3GBMonth, &r.GP3GBMonth}, {&base.ALBHour, &r.ALBHour},
			{&base.LCUHour, &r.LCUHour}, {&base.HostedZoneMonth, &r.HostedZoneMonth},
		} {
			if *f.src > 0 {
				*f.dst = *f.src
			}
		}
		p.Regions[name] = base
	}
}

// Cost is a topology's monthly cost, line by line.
type Cost struct {
	Currency string     `json:"currency"`
	Lines    []CostLine `json:"lines"`
	Total    float64    `json:"total"`
	Source   string     `json:"source,omitempty"`
	AsOf     string     `json:"as_of,omitempty"`
	// Assumptions are what the figures rest on beyond list prices.
	Assumptions []string `json:"assumptions,omitempty"`
	// Unpriced are the settings the table has no price for: their
	// lines are Unknown and Total leaves them out.
	Unpriced []Unpriced `json:"unpriced,omitempty"`
}

// Unpriced is a setting of hoist.yml that the price table lacks.
type Unpriced struct {
	// Field is its path in hoist.yml: infra.instance_type or infra.region.
	Field string `json:"field"`
	Msg   string `json:"message"`
}

// CostLine is one item: Quantity × Unit at UnitPrice.
type CostLine struct {
	Item      string  `json:"item"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice float64 `json:"unit_price"`
	Monthly   float64 `json:"monthly"`
	// Unknown is set when the table has no price for it.
	Unknown bool `json:"unknown,omitempty"`
}

// Comparison is one front's monthly total for the same hosts.
type Comparison struct {
	Balancer string  `json:"balancer"`
	Total    float64 `json:"total"`
	Current  bool    `json:"current"`
	// Unknown is set when some of it has no price in the table.
	Unknown bool `json:"unknown,omitempty"`
}

// PricesHint says how to give the prices the table lacks.
const PricesHint = "give them in a price file with --prices FILE (docs/provision.md shows its form)"

// Estimate prices the spec's topology for a month. A region or an
// instance type the table lacks leaves its lines Unknown, named in
// Unpriced, and the rest priced: a plan is still worth reading.
func Estimate(s Spec, p *Prices) Cost {
	if r := lookupSpec(s.Provider); r.Estimate != nil {
		return r.Estimate(s, p)
	}
	return Cost{Currency: "USD", Lines: []CostLine{},
		Unpriced: []Unpriced{{Field: "infra.provider", Msg: fmt.Sprintf("hoist has no prices for provider %s", s.Provider)}}}
}

// estimateFree is the cost of hosts on this machine.
func estimateFree(Spec, *Prices) Cost {
	return Cost{Currency: "USD", Lines: []CostLine{}, Assumptions: []string{"lab hosts run on this machine and cost nothing"}}
}

// estimateAWS prices EC2 instances, their addresses and disks, and the
// balancer and hosted zone, from hoist's table.
func estimateAWS(s Spec, p *Prices) Cost {
	c := Cost{Currency: "USD", Source: p.Source, AsOf: p.AsOf}
	r, regionKnown := p.Regions[s.Region]
	hourly, typeKnown := r.Instances[s.InstanceType]
	if !regionKnown {
		c.Unpriced = append(c.Unpriced, Unpriced{Field: "infra.region", Msg: fmt.Sprintf("no prices for %s in hoist's table", s.Region)})
	} else if !typeKnown {
		c.Unpriced = append(c.Unpriced, Unpriced{Field: "infra.instance_type", Msg: fmt.Sprintf("no price for %s in %s in hoist's table", s.InstanceType, s.Region)})
	}
	h := p.HoursPerMonth
	n := float64(s.Count)
	c.add(fmt.Sprintf("%s instance", s.InstanceType), n*h, "instance-hours", hourly, typeKnown)
	c.add("public IPv4 address of each instance", n*h, "address-hours", r.PublicIPv4Hour, regionKnown)
	c.add(fmt.Sprintf("gp3 disk, %d GiB each", s.DiskGB), n*float64(s.DiskGB), "GiB-months", r.GP3GBMonth, regionKnown)
	if s.Balancer == config.BalancerALB {
		zones := float64(max(2, len(s.Zones)))
		c.add("application load balancer", h, "hours", r.ALBHour, regionKnown)
		c.add(fmt.Sprintf("load balancer capacity, %.0f LCU assumed", LCUAssumed), LCUAssumed*h, "LCU-hours", r.LCUHour, regionKnown)
		c.add("public IPv4 address of the balancer in each zone", zones*h, "address-hours", r.PublicIPv4Hour, regionKnown)
		c.Assumptions = append(c.Assumptions, fmt.Sprintf("the balancer averages %.0f LCU (25 new connections/s, 3,000 active connections, 1 GB/h or 1,000 rule evaluations/s); more traffic costs $%.3f per LCU-hour", LCUAssumed, r.LCUHour))
	}
	if s.DNSZone != "" {
		c.add("Route 53 hosted zone "+s.DNSZone, 1, "zone-months", r.HostedZoneMonth, regionKnown)
		c.Assumptions = append(c.Assumptions, "DNS queries are not counted ($0.40 per million for the first billion a month)")
	}
	c.Assumptions = append(c.Assumptions, fmt.Sprintf("a month is %.0f hours; traffic out of AWS is not counted", h))
	return c
}

// add adds a line; one whose price is not known adds nothing to Total.
func (c *Cost) add(item string, qty float64, unit string, price float64, known bool) {
	l := CostLine{Item: item, Quantity: qty, Unit: unit, UnitPrice: price, Monthly: cents(qty * price), Unknown: !known}
	if !known {
		l.UnitPrice, l.Monthly = 0, 0
	}
	c.Lines = append(c.Lines, l)
	c.Total = cents(c.Total + l.Monthly)
}

func cents(v float64) float64 { return math.Round(v*100) / 100 }

// Compare prices the spec with each front: none where the hosts cost
// nothing, or hoist has no prices for them.
func Compare(s Spec, p *Prices) []Comparison {
	if c := Estimate(s, p); len(c.Lines) == 0 {
		return nil
	}
	var out []Comparison
	for _, b := range []string{config.BalancerNone, config.BalancerALB} {
		alt := s
		alt.Balancer = b
		if b == config.BalancerALB && len(alt.Zones) < 2 {
			alt.Zones = append(append([]string(nil), alt.Zones...), s.Region+"b")
		}
		c := Estimate(alt, p)
		out = append(out, Comparison{Balancer: b, Total: c.Total, Current: b == s.Balancer, Unknown: len(c.Unpriced) > 0})
	}
	return out
}
