package dns

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/libdns/libdns"

	"github.com/hoistdev/hoist/internal/usererr"
)

// State is how a name's records stand against what hoist wants.
type State string

// States of a name.
const (
	InSync     State = "in-sync"     // as wanted, and hoist's (or already right)
	Missing    State = "missing"     // no address records yet
	Differs    State = "differs"     // hoist's, pointing elsewhere
	Stale      State = "stale"       // hoist's, no longer wanted
	NotOwned   State = "not-owned"   // records hoist did not make
	OtherOwner State = "other-owner" // marked by another hoist owner
)

// Action is what apply does about a name.
type Action string

// Actions of a plan.
const (
	None     Action = "none"
	Create   Action = "create"
	Update   Action = "update"
	Delete   Action = "delete"
	TakeOver Action = "take-over" // records hoist does not own, as told
	Refuse   Action = "refuse"    // records hoist does not own, not told
)

// Entry is one name of a plan.
type Entry struct {
	Name   string `json:"name"`
	State  State  `json:"state"`
	Action Action `json:"action"`
	// Owner is the hoist owner the name's ownership record names, if any.
	Owner string `json:"owner,omitempty"`
	// Want and Have are the address records wanted and found.
	Want Records `json:"want,omitempty"`
	Have Records `json:"have,omitempty"`

	// found are the records read, to delete them exactly as they are.
	found   []libdns.RR
	markers []libdns.RR // hoist's ownership records at the marker name
}

// Plan is what apply would change in a zone, name by name, sorted.
type Plan struct {
	Provider string  `json:"provider"`
	Zone     string  `json:"zone"`
	Owner    string  `json:"owner"`
	Names    []Entry `json:"names"`
}

// Changes are the entries apply acts on.
func (p *Plan) Changes() []Entry {
	var out []Entry
	for _, e := range p.Names {
		if e.Action != None && e.Action != Refuse {
			out = append(out, e)
		}
	}
	return out
}

// Refused are the entries apply leaves alone because hoist does not own
// their records.
func (p *Plan) Refused() []Entry {
	var out []Entry
	for _, e := range p.Names {
		if e.Action == Refuse {
			out = append(out, e)
		}
	}
	return out
}

// Plan reads the zone and compares it with want. Names in takeOver may
// have their records replaced even if hoist does not own them.
func (z *Zone) Plan(ctx context.Context, want Want, takeOver []string) (*Plan, error) {
	for name := range want {
		if err := z.checkName(name); err != nil {
			return nil, err
		}
	}
	for _, name := range takeOver {
		if _, ok := want[normName(name)]; !ok {
			return nil, usererr.New("--take-over %s: hoist does not manage that name", name).
				WithHint("give a name of proxy.hosts")
		}
	}
	recs, err := z.read(ctx)
	if err != nil {
		return nil, err
	}
	found := map[string][]libdns.RR{}   // name -> address records
	markers := map[string][]libdns.RR{} // marked name -> hoist's markers
	for _, rr := range recs {
		name := z.absolute(rr.Name)
		typ := strings.ToUpper(rr.Type)
		switch {
		case slices.Contains(managedTypes, typ):
			rr.Type = typ
			found[name] = append(found[name], rr)
		case typ == "TXT":
			if _, ok := markerOwner(rr.Data); ok {
				if marked := markedName(name); marked != "" {
					markers[marked] = append(markers[marked], rr)
				}
			}
		}
	}
	p := &Plan{Provider: z.Provider, Zone: normName(z.Name), Owner: z.Owner}
	names := map[string]bool{}
	for name := range want {
		names[name] = true
	}
	for name, ms := range markers {
		for _, m := range ms {
			if o, _ := markerOwner(m.Data); o == z.Owner {
				names[name] = true
			}
		}
	}
	for name := range names {
		e := Entry{Name: name, Want: want[name], found: found[name], markers: markers[name], Have: recordsOf(found[name])}
		z.judge(&e, want[name] != nil, slices.Contains(takeOver, name))
		p.Names = append(p.Names, e)
	}
	sort.Slice(p.Names, func(i, j int) bool { return p.Names[i].Name < p.Names[j].Name })
	return p, nil
}

// checkName refuses a name the zone cannot hold before anything is
// read or changed.
func (z *Zone) checkName(name string) error {
	if !InZone(name, z.Name) {
		return usererr.New("%s (zone %s): %s is not in the zone", z.Provider, normName(z.Name), name).
			WithHint("hoist keeps records of one zone per app: set dns.zone to a zone that holds every name of proxy.hosts")
	}
	if strings.HasPrefix(name, "_") || strings.Contains(name, "._") {
		return usererr.New("%s (zone %s): %s: names starting with _ are kept for hoist's ownership records", z.Provider, normName(z.Name), name)
	}
	return nil
}

// judge sets an entry's state and action.
func (z *Zone) judge(e *Entry, wanted, takeOver bool) {
	owners := map[string]bool{}
	for _, m := range e.markers {
		o, _ := markerOwner(m.Data)
		owners[o] = true
	}
	ours := owners[z.Owner]
	for o := range owners {
		if o != z.Owner {
			e.Owner = o
		}
	}
	if ours {
		e.Owner = z.Owner
	}
	switch {
	case !wanted:
		e.State, e.Action = Stale, Delete
	case ours && len(owners) > 1:
		// A take-over cut short left the old owner's mark beside ours.
		e.State, e.Action = Differs, Update
	case ours && e.Have.equal(e.Want):
		e.State, e.Action = InSync, None
	case ours && e.Have.empty():
		e.State, e.Action = Missing, Create
	case ours:
		e.State, e.Action = Differs, Update
	case e.Owner == "" && e.Have.empty():
		e.State, e.Action = Missing, Create
	default:
		e.State = NotOwned
		if e.Owner != "" {
			e.State = OtherOwner
		}
		switch {
		case takeOver:
			e.Action = TakeOver
		case e.Have.equal(e.Want):
			// Already right: nothing to overwrite, nothing to refuse.
			e.Action = None
		default:
			e.Action = Refuse
		}
	}
}

// recordsOf groups records by type, values normalised and sorted.
func recordsOf(rrs []libdns.RR) Records {
	r := Records{}
	for _, rr := range rrs {
		v := normValue(rr.Type, rr.Data)
		if !slices.Contains(r[rr.Type], v) {
			r[rr.Type] = append(r[rr.Type], v)
		}
	}
	for _, vs := range r {
		slices.SortFunc(vs, compareValues)
	}
	if len(r) == 0 {
		return nil
	}
	return r
}

// Describe is one line a person reads about an entry.
func (e Entry) Describe() string {
	switch e.Action {
	case Create:
		return fmt.Sprintf("create %s: %s", e.Name, e.Want)
	case Update:
		return fmt.Sprintf("update %s: %s -> %s", e.Name, e.Have, e.Want)
	case Delete:
		return fmt.Sprintf("delete %s: %s", e.Name, e.Have)
	case TakeOver:
		return fmt.Sprintf("take over %s (%s): %s -> %s", e.Name, e.whose(), e.Have, e.Want)
	case Refuse:
		return fmt.Sprintf("refuse %s: %s, %s, is not hoist's to change (wanted: %s)", e.Name, e.Have, e.whose(), e.Want)
	}
	if e.State == NotOwned || e.State == OtherOwner {
		return fmt.Sprintf("keep %s: %s (%s, already as wanted)", e.Name, e.Have, e.whose())
	}
	return fmt.Sprintf("keep %s: %s", e.Name, e.Have)
}

func (e Entry) whose() string {
	if e.State == OtherOwner {
		return "owned by hoist owner " + e.Owner
	}
	return "not made by hoist"
}
