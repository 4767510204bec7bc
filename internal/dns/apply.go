package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Step is one call to the provider that apply made: records added or
// deleted at one name, of one type.
type Step struct {
	Op     string   `json:"op"` // "add" or "delete"
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Values []string `json:"values"`

	recs []libdns.RR
}

func (s Step) String() string {
	return fmt.Sprintf("%s %s %s %s", s.Op, s.Type, s.Name, strings.Join(s.Values, " "))
}

// Apply makes the plan's changes, name by name, and calls done after
// each step the provider accepted. Within a name, the steps are ordered
// so that a run cut short at any point leaves a state the next plan
// converges from: the ownership record is added before the records it
// vouches for and deleted after them, and new addresses are added before
// old ones go (no moment without an address). It stops at the first
// error, which names the record and the provider; an *ApplyError lists
// what was done and what was not. Names the plan refuses are left alone
// and reported at the end.
func (z *Zone) Apply(ctx context.Context, p *Plan, done func(Step)) error {
	var made []Step
	changes := p.Changes()
	for i, e := range changes {
		for _, s := range z.steps(e) {
			if err := z.do(ctx, s); err != nil {
				var pending []string
				for _, later := range changes[i:] {
					pending = append(pending, later.Name)
				}
				return &ApplyError{Done: made, Failed: s, Pending: pending, Err: err}
			}
			made = append(made, s)
			if done != nil {
				done(s)
			}
		}
	}
	if refused := p.Refused(); len(refused) > 0 {
		return refusedError(z, refused)
	}
	return nil
}

// steps are the provider calls that take e from what it has to what it
// wants.
func (z *Zone) steps(e Entry) []Step {
	var first, adds, deletes, last []Step
	var ours, foreign []libdns.RR
	for _, m := range e.markers {
		if o, _ := markerOwner(m.Data); o == z.Owner {
			ours = append(ours, m)
		} else {
			foreign = append(foreign, m)
		}
	}
	if e.Action == Delete {
		for _, t := range managedTypes {
			if rrs := ofType(e.found, t); len(rrs) > 0 {
				deletes = append(deletes, z.step("delete", e.Name, t, rrs))
			}
		}
		if len(ours) > 0 {
			last = append(last, z.step("delete", markerName(e.Name), "TXT", ours))
		}
		return append(deletes, last...)
	}
	if len(ours) == 0 {
		first = append(first, z.step("add", markerName(e.Name), "TXT", []libdns.RR{{
			Name: z.relative(markerName(e.Name)), Type: "TXT", TTL: z.ttl(), Data: markerValue(z.Owner),
		}}))
	}
	// A CNAME shares its name with no address record: when one replaces
	// the other, the old goes first.
	cname := len(e.Want[TypeCNAME]) > 0
	for _, t := range managedTypes {
		var add, del []libdns.RR
		for _, v := range e.Want[t] {
			if !slices.Contains(e.Have[t], v) {
				add = append(add, libdns.RR{Name: z.relative(e.Name), Type: t, TTL: z.ttl(), Data: v})
			}
		}
		for _, rr := range ofType(e.found, t) {
			if !slices.Contains(e.Want[t], normValue(t, rr.Data)) {
				del = append(del, rr)
			}
		}
		if len(add) > 0 {
			adds = append(adds, z.step("add", e.Name, t, add))
		}
		if len(del) > 0 {
			s := z.step("delete", e.Name, t, del)
			if (t == TypeCNAME) != cname {
				first = append(first, s)
			} else {
				deletes = append(deletes, s)
			}
		}
	}
	if len(foreign) > 0 {
		last = append(last, z.step("delete", markerName(e.Name), "TXT", foreign))
	}
	return slices.Concat(first, adds, deletes, last)
}

func (z *Zone) step(op, name, typ string, rrs []libdns.RR) Step {
	s := Step{Op: op, Name: name, Type: typ, recs: rrs}
	for _, rr := range rrs {
		s.Values = append(s.Values, normValue(typ, rr.Data))
	}
	return s
}

func ofType(rrs []libdns.RR, typ string) []libdns.RR {
	var out []libdns.RR
	for _, rr := range rrs {
		if rr.Type == typ {
			out = append(out, rr)
		}
	}
	return out
}

// do makes one step's provider call.
func (z *Zone) do(ctx context.Context, s Step) error {
	recs := make([]libdns.Record, len(s.recs))
	for i, rr := range s.recs {
		recs[i] = rr
	}
	return z.call(ctx, s.String(), func(ctx context.Context) error {
		var err error
		if s.Op == "add" {
			_, err = z.API.AppendRecords(ctx, fqdn(z.Name), recs)
		} else {
			_, err = z.API.DeleteRecords(ctx, fqdn(z.Name), recs)
		}
		return err
	})
}

// CallTimeout bounds each call to a provider, so that a server that
// stops answering fails the run instead of hanging it.
var CallTimeout = time.Minute

// call runs one provider call with a deadline, and turns a failure (or
// a provider's panic) into an error that names the provider, the zone
// and what was being done, with a hint.
func (z *Zone) call(ctx context.Context, what string, fn func(context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the provider failed: %v", r)
		}
		if err != nil {
			err = &usererr.Error{
				Msg:  fmt.Sprintf("%s (zone %s): %s", z.Provider, normName(z.Name), what),
				Hint: hint(z.Provider, err),
				Err:  err,
			}
		}
	}()
	return fn(ctx)
}

// hint guesses what to do about a provider's error from its text: the
// providers' errors share no types.
func hint(provider string, err error) string {
	msg := strings.ToLower(err.Error())
	var ne net.Error
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(msg, w) {
				return true
			}
		}
		return false
	}
	creds, secrets := "the credentials", SecretPrefix+"..."
	if vs := credentialVars(provider); len(vs) > 0 {
		creds = strings.Join(vs, ", ")
		var ss []string
		for _, v := range vs {
			ss = append(ss, SecretPrefix+v)
		}
		secrets = strings.Join(ss, ", ")
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		has("connection refused", "no route to host", "network is unreachable", "connection reset", "eof", "i/o timeout"):
		return "the DNS provider did not answer; nothing after the last change listed was made. Run the command again when it is reachable: hoist picks up where it stopped"
	case has("does not serve zone", "hostedzonenotfound", "no zones found", "notzone", "nxdomain", "no such zone", "zone not found", "could not find zone", "no hosted zone"):
		return "check dns.zone: the provider does not serve that zone for these credentials"
	case has("notauth", "badsig", "badkey", "bad signature", "bad authentication", "tsig", "unauthorized", "authentication", "forbidden", "401", "403", "invalid access token", "refused", "signaturedoesnotmatch", "invalidclienttokenid", "credentials"):
		return "the provider refused the credentials: check " + creds + " (in the environment, or in hoist secrets as " + secrets + ")"
	case has("hosted zone", "not found", "404"):
		return "check dns.zone: the provider does not serve that zone for these credentials"
	}
	return "check dns.provider, dns.zone, dns.settings and " + creds
}

// ApplyError is an apply that stopped at a failed step.
type ApplyError struct {
	Done    []Step   // steps made before the failure
	Failed  Step     // the step that failed
	Pending []string // names not converged: the failed one and those after
	Err     error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("%v (made %d change(s) before it; not converged: %s)", e.Err, len(e.Done), strings.Join(e.Pending, ", "))
}

func (e *ApplyError) Unwrap() error { return e.Err }

// refusedError names the records hoist would not change.
func refusedError(z *Zone, refused []Entry) error {
	var lines, names []string
	for _, e := range refused {
		lines = append(lines, e.Describe())
		names = append(names, e.Name)
	}
	return usererr.New("%s (zone %s): left alone %d name(s) whose records hoist does not own:\n  %s",
		z.Provider, normName(z.Name), len(refused), strings.Join(lines, "\n  ")).
		WithHint("hoist changes only the records it made. To let it replace these, run `hoist dns apply --take-over %s`", strings.Join(names, " --take-over "))
}
