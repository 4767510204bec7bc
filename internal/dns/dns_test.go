package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/libdns/libdns"

	"github.com/hoistdev/hoist/internal/usererr"
)

// memZone is a provider that keeps one zone in memory with libdns's
// semantics, and can be told to fail from a given call on.
type memZone struct {
	mu      sync.Mutex
	recs    []libdns.RR
	calls   int
	failAt  int // 1-based call number that fails, and every one after; 0 never
	failErr error
}

func (m *memZone) fail() error {
	m.calls++
	if m.failAt > 0 && m.calls >= m.failAt {
		return m.failErr
	}
	return nil
}

func (m *memZone) GetRecords(_ context.Context, zone string) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return nil, err
	}
	out := make([]libdns.Record, len(m.recs))
	for i, r := range m.recs {
		out[i] = r
	}
	return out, nil
}

func (m *memZone) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return nil, err
	}
	for _, r := range recs {
		m.recs = append(m.recs, r.RR())
	}
	return recs, nil
}

func (m *memZone) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail(); err != nil {
		return nil, err
	}
	for _, r := range recs {
		rr := r.RR()
		m.recs = slices.DeleteFunc(m.recs, func(x libdns.RR) bool {
			return x.Name == rr.Name && x.Type == rr.Type && x.Data == rr.Data
		})
	}
	return recs, nil
}

// lines is the zone as sorted "name type data" lines.
func (m *memZone) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		out = append(out, r.Name+" "+r.Type+" "+r.Data)
	}
	sort.Strings(out)
	return out
}

func addrs(ss ...string) Targets {
	var t Targets
	for _, s := range ss {
		t.Addresses = append(t.Addresses, netip.MustParseAddr(s))
	}
	return t
}

func rr(name, typ, data string) libdns.RR {
	return libdns.RR{Name: name, Type: typ, Data: data, TTL: DefaultTTL}
}

const ours = "heritage=hoist,hoist/owner=shop"

func TestApply(t *testing.T) {
	foreign := rr("legacy", "A", "192.0.2.9")
	tests := map[string]struct {
		zone     []libdns.RR
		names    []string
		targets  Targets
		takeOver []string
		want     []string // the zone after apply
		wantErr  string   // an error that apply returns, after changing what it may
		actions  map[string]Action
	}{
		"creates records and marks them": {
			names: []string{"www.example.com", "example.com"}, targets: addrs("10.0.0.2", "10.0.0.1", "2001:db8::1"),
			want: []string{"@ A 10.0.0.1", "@ A 10.0.0.2", "@ AAAA 2001:db8::1", "_hoist TXT " + ours, "_hoist.www TXT " + ours,
				"www A 10.0.0.1", "www A 10.0.0.2", "www AAAA 2001:db8::1"},
			actions: map[string]Action{"example.com": Create, "www.example.com": Create},
		},
		"in step: nothing to do": {
			zone:  []libdns.RR{rr("www", "A", "10.0.0.1"), rr("_hoist.www", "TXT", ours)},
			names: []string{"www.example.com"}, targets: addrs("10.0.0.1"),
			want:    []string{"_hoist.www TXT " + ours, "www A 10.0.0.1"},
			actions: map[string]Action{"www.example.com": None},
		},
		"follows a changed address": {
			zone:  []libdns.RR{rr("www", "A", "10.0.0.1"), rr("www", "A", "10.0.0.2"), rr("_hoist.www", "TXT", ours)},
			names: []string{"www.example.com"}, targets: addrs("10.0.0.1", "10.0.0.3"),
			want:    []string{"_hoist.www TXT " + ours, "www A 10.0.0.1", "www A 10.0.0.3"},
			actions: map[string]Action{"www.example.com": Update},
		},
		"removes what is no longer wanted, and only that": {
			zone: []libdns.RR{rr("old", "A", "10.0.0.1"), rr("_hoist.old", "TXT", ours), foreign,
				rr("old", "MX", "10 mail.example.com."), rr("_hoist.old", "TXT", "v=other")},
			want:    []string{"_hoist.old TXT v=other", "legacy A 192.0.2.9", "old MX 10 mail.example.com."},
			actions: map[string]Action{"old.example.com": Delete},
		},
		"refuses a record it does not own, naming it, and does the rest": {
			zone: []libdns.RR{foreign}, names: []string{"legacy.example.com", "www.example.com"}, targets: addrs("10.0.0.1"),
			want:    []string{"_hoist.www TXT " + ours, "legacy A 192.0.2.9", "www A 10.0.0.1"},
			wantErr: "legacy.example.com: A 192.0.2.9, not made by hoist",
			actions: map[string]Action{"legacy.example.com": Refuse, "www.example.com": Create},
		},
		"refuses a record another owner marked": {
			zone:  []libdns.RR{rr("www", "A", "10.0.0.7"), rr("_hoist.www", "TXT", "heritage=hoist,hoist/owner=blog")},
			names: []string{"www.example.com"}, targets: addrs("10.0.0.1"),
			want:    []string{"_hoist.www TXT heritage=hoist,hoist/owner=blog", "www A 10.0.0.7"},
			wantErr: "owned by hoist owner blog",
			actions: map[string]Action{"www.example.com": Refuse},
		},
		"leaves alone a record it does not own that is already right": {
			zone: []libdns.RR{rr("www", "A", "10.0.0.1")}, names: []string{"www.example.com"}, targets: addrs("10.0.0.1"),
			want:    []string{"www A 10.0.0.1"},
			actions: map[string]Action{"www.example.com": None},
		},
		"takes over when told": {
			zone:  []libdns.RR{rr("www", "A", "10.0.0.7"), rr("_hoist.www", "TXT", "heritage=hoist,hoist/owner=blog")},
			names: []string{"www.example.com"}, targets: addrs("10.0.0.1"), takeOver: []string{"www.example.com"},
			want:    []string{"_hoist.www TXT " + ours, "www A 10.0.0.1"},
			actions: map[string]Action{"www.example.com": TakeOver},
		},
		"a balancer replaces addresses with a CNAME": {
			zone:  []libdns.RR{rr("www", "A", "10.0.0.1"), rr("_hoist.www", "TXT", ours)},
			names: []string{"www.example.com"}, targets: Targets{Balancer: "LB-1.elb.example.net"},
			want:    []string{"_hoist.www TXT " + ours, "www CNAME lb-1.elb.example.net."},
			actions: map[string]Action{"www.example.com": Update},
		},
		"wildcards are marked beside their zone": {
			names: []string{"*.apps.example.com"}, targets: addrs("10.0.0.1"),
			want:    []string{"*.apps A 10.0.0.1", "_hoist-wildcard.apps TXT " + ours},
			actions: map[string]Action{"*.apps.example.com": Create},
		},
		"destroy removes every record it owns and nothing else": {
			zone: []libdns.RR{rr("www", "A", "10.0.0.1"), rr("_hoist.www", "TXT", ours), rr("*.apps", "A", "10.0.0.1"),
				rr("_hoist-wildcard.apps", "TXT", ours), foreign, rr("blog", "A", "10.0.0.9"), rr("_hoist.blog", "TXT", "heritage=hoist,hoist/owner=blog")},
			want:    []string{"_hoist.blog TXT heritage=hoist,hoist/owner=blog", "blog A 10.0.0.9", "legacy A 192.0.2.9"},
			actions: map[string]Action{"www.example.com": Delete, "*.apps.example.com": Delete},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			m := &memZone{recs: slices.Clone(tt.zone)}
			z := &Zone{Provider: "mem", Name: "example.com", Owner: "shop", API: m}
			want, err := Desired(tt.names, tt.targets)
			if err != nil {
				t.Fatal(err)
			}
			p, err := z.Plan(context.Background(), want, tt.takeOver)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Action{}
			for _, e := range p.Names {
				got[e.Name] = e.Action
			}
			if diff := cmp.Diff(tt.actions, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			err = z.Apply(context.Background(), p, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("apply: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("apply error = %v, want one containing %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, m.lines()); diff != "" {
				t.Errorf("zone after apply (-want +got):\n%s", diff)
			}
			// A second run has nothing left to change.
			p2, err := z.Plan(context.Background(), want, tt.takeOver)
			if err != nil {
				t.Fatal(err)
			}
			if c := p2.Changes(); len(c) > 0 {
				t.Errorf("second plan still changes %+v", c)
			}
		})
	}
}

// TestApplyCutShort fails the provider at every call in turn, while an
// app moves from one host to two and drops a name: each time the error
// names the failed record and the provider, lists what was made, and a
// second run converges to the same zone as a run without failure.
func TestApplyCutShort(t *testing.T) {
	start := []libdns.RR{rr("www", "A", "10.0.0.1"), rr("_hoist.www", "TXT", ours), rr("old", "A", "10.0.0.1"), rr("_hoist.old", "TXT", ours)}
	names := []string{"www.example.com", "api.example.com"}
	want, _ := Desired(names, addrs("10.0.0.2", "2001:db8::2"))
	clean := &memZone{recs: slices.Clone(start)}
	converge(t, &Zone{Provider: "mem", Name: "example.com", Owner: "shop", API: clean}, want)
	for failAt := 2; ; failAt++ {
		m := &memZone{recs: slices.Clone(start), failAt: failAt, failErr: errors.New("dial tcp 127.0.0.1:53: connect: connection refused")}
		z := &Zone{Provider: "mem", Name: "example.com", Owner: "shop", API: m}
		p, err := z.Plan(context.Background(), want, nil)
		if err != nil {
			t.Fatal(err)
		}
		var seen []Step
		err = z.Apply(context.Background(), p, func(s Step) { seen = append(seen, s) })
		if err == nil {
			break // every step made it: failAt is past the last call
		}
		var ae *ApplyError
		if !errors.As(err, &ae) {
			t.Fatalf("fail at call %d: error %T %v, want an *ApplyError", failAt, err, err)
		}
		if !strings.Contains(err.Error(), "mem (zone example.com): "+ae.Failed.String()) {
			t.Errorf("fail at call %d: error %q does not name the record and the provider", failAt, err)
		}
		if !strings.Contains(usererr.HintOf(err), "did not answer") {
			t.Errorf("fail at call %d: hint %q", failAt, usererr.HintOf(err))
		}
		if diff := cmp.Diff(seen, ae.Done, cmp.AllowUnexported(Step{})); diff != "" {
			t.Errorf("fail at call %d: reported steps differ from those made:\n%s", failAt, diff)
		}
		m.failAt = 0
		converge(t, z, want)
		if diff := cmp.Diff(clean.lines(), m.lines()); diff != "" {
			t.Errorf("fail at call %d, then a second run: zone differs from a clean run (-clean +got):\n%s", failAt, diff)
		}
		if failAt > 50 {
			t.Fatal("apply never finished")
		}
	}
}

func converge(t *testing.T, z *Zone, want Want) {
	t.Helper()
	p, err := z.Plan(context.Background(), want, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Apply(context.Background(), p, nil); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateNeverLeavesANameWithoutAddress checks the order of an
// address change: the new address is added before the old one goes.
func TestUpdateNeverLeavesANameWithoutAddress(t *testing.T) {
	m := &memZone{recs: []libdns.RR{rr("www", "A", "10.0.0.1"), rr("_hoist.www", "TXT", ours)}}
	z := &Zone{Provider: "mem", Name: "example.com", Owner: "shop", API: m}
	want, _ := Desired([]string{"www.example.com"}, addrs("10.0.0.2"))
	p, _ := z.Plan(context.Background(), want, nil)
	var steps []string
	if err := z.Apply(context.Background(), p, func(s Step) {
		steps = append(steps, s.String())
		if !slices.ContainsFunc(m.lines(), func(l string) bool { return strings.HasPrefix(l, "www A ") }) {
			t.Errorf("after %s, www has no address", s)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"add A www.example.com 10.0.0.2", "delete A www.example.com 10.0.0.1"}, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

func TestPlanRefusesBadNamesBeforeAnyCall(t *testing.T) {
	tests := map[string]struct {
		names    []string
		takeOver []string
		want     string
	}{
		"outside the zone":       {[]string{"www.example.org"}, nil, "mem (zone example.com): www.example.org is not in the zone"},
		"a suffix, not the zone": {[]string{"www.notexample.com"}, nil, "www.notexample.com is not in the zone"},
		"hoist's own prefix":     {[]string{"_hoist.example.com"}, nil, "names starting with _"},
		"take over of a stranger": {[]string{"www.example.com"}, []string{"mail.example.com"},
			"--take-over mail.example.com: hoist does not manage that name"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			m := &memZone{}
			z := &Zone{Provider: "mem", Name: "example.com", Owner: "shop", API: m}
			want, _ := Desired(tt.names, addrs("10.0.0.1"))
			_, err := z.Plan(context.Background(), want, tt.takeOver)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("plan error = %v, want %q", err, tt.want)
			}
			if m.calls != 0 {
				t.Errorf("the provider was called %d time(s)", m.calls)
			}
		})
	}
}

func TestProviderErrorsNameRecordProviderAndHint(t *testing.T) {
	tests := map[string]struct {
		err  error
		hint string
	}{
		// The secret's real name, not a placeholder.
		"bad TSIG":           {errors.New(`dns response error code "NOTAUTH" (9)`), "in hoist secrets as HOIST_DNS_RFC2136_KEY)"},
		"bad token":          {errors.New("GET https://api.dnsimple.com/v2/whoami: 401 Authentication failed"), "check RFC2136_KEY"},
		"no such zone":       {errors.New(`dns response error code "NOTZONE" (10)`), "check dns.zone"},
		"server unreachable": {fmt.Errorf("dial: %w", context.DeadlineExceeded), "did not answer"},
		"provider panics":    {nil, "check dns.provider"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			z := &Zone{Provider: "rfc2136", Name: "example.com", Owner: "shop", API: &memZone{}}
			err := z.call(context.Background(), "add A www.example.com 10.0.0.1", func(context.Context) error {
				if tt.err == nil {
					var p *memZone
					p.lines() // a nil dereference, as a provider bug would
				}
				return tt.err
			})
			if err == nil || !strings.HasPrefix(err.Error(), "rfc2136 (zone example.com): add A www.example.com 10.0.0.1: ") {
				t.Fatalf("error = %v", err)
			}
			if h := usererr.HintOf(err); !strings.Contains(h, tt.hint) {
				t.Errorf("hint = %q, want one with %q", h, tt.hint)
			}
		})
	}
}

func TestMarkerNamesRoundTrip(t *testing.T) {
	for _, n := range []string{"example.com", "www.example.com", "*.example.com", "*.a.b.example.com"} {
		if got := markedName(markerName(n)); got != n {
			t.Errorf("markedName(markerName(%q)) = %q", n, got)
		}
	}
	if o, ok := markerOwner(`"heritage=hoist,hoist/owner=shop"`); !ok || o != "shop" {
		t.Errorf("markerOwner = %q, %v", o, ok)
	}
	if _, ok := markerOwner("heritage=external-dns,external-dns/owner=default"); ok {
		t.Error("external-dns's marker taken for hoist's")
	}
}
