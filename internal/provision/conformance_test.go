//go:build integration || lab

package provision

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// conformance is a provider under the conformance suite: its registered
// name, a spec of it, and the factory that makes the provider of a spec
// against what the repository tests it with (kumo for aws, the lab for
// lab).
type conformance struct {
	Name string
	Spec Spec
	New  func(t *testing.T, s Spec) Provider
	// Timeout bounds the whole suite.
	Timeout time.Duration
}

var errNoUserData = errors.New("conformance: no user data for this host")

// testConformance is what every registered provider passes, in the
// spirit of restic's backend tests: one suite, given how to make the
// provider. It exercises a plan made offline, describe (Observe) of
// nothing, destroy of nothing, create that fails on the user data and
// the destroy that cleans up after it, create, list and describe of
// what was made, a second apply that changes nothing, destroy, and
// describe of nothing again.
func testConformance(t *testing.T, c conformance) {
	r, ok := Lookup(c.Name)
	if !ok || r.New == nil {
		t.Fatalf("provider %q is not registered (registered: %v)", c.Name, Names())
	}
	if c.Spec.Provider != c.Name {
		t.Fatalf("the spec is for %q, the suite for %q", c.Spec.Provider, c.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	p := c.New(t, c.Spec)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		defer cancel()
		if inv, err := p.Observe(ctx); err == nil && len(inv.Resources) > 0 {
			t.Logf("cleaning up %d resource(s)", len(inv.Resources))
			_ = p.Destroy(ctx, inv, testLog{t})
		}
	})
	env := ApplyEnv{Log: testLog{t}, UserData: func(context.Context, string) ([]byte, error) {
		return []byte("#cloud-config\n{}\n"), nil
	}}

	// Plan offline: the spec's hosts, each by its logical name.
	want := p.Desired()
	names := map[string]bool{}
	for _, res := range want {
		if res.Kind == "" || res.Name == "" || res.Props == "" {
			t.Errorf("desired resource without kind, name or props: %+v", res)
		}
		names[res.Name] = true
	}
	for i := 0; i < c.Spec.Count; i++ {
		if !names[c.Spec.HostName(i)] {
			t.Errorf("the plan has no resource for host %s: %+v", c.Spec.HostName(i), want)
		}
	}

	observeNothing := func(when string) {
		t.Helper()
		inv, err := p.Observe(ctx)
		if err != nil {
			t.Fatalf("observe %s: %v", when, err)
		}
		if len(inv.Resources) != 0 || len(inv.Hosts) != 0 || inv.Balancer != nil {
			t.Fatalf("observe %s found %d resource(s), %d host(s), balancer %v", when, len(inv.Resources), len(inv.Hosts), inv.Balancer)
		}
	}
	observeNothing("before anything was made")
	if err := p.Destroy(ctx, &Inventory{}, testLog{t}); err != nil {
		t.Fatalf("destroy of nothing: %v", err)
	}

	// Error path: a host whose user data cannot be had is not made,
	// the error says why, and destroy removes whatever was made first.
	failing := env
	failing.UserData = func(context.Context, string) ([]byte, error) { return nil, errNoUserData }
	if err := p.Apply(ctx, Diff(want, nil), failing); !errors.Is(err, errNoUserData) {
		t.Fatalf("apply without user data: %v, want %v", err, errNoUserData)
	}
	inv, err := p.Observe(ctx)
	if err != nil {
		t.Fatalf("observe after a failed apply: %v", err)
	}
	if err := p.Destroy(ctx, inv, testLog{t}); err != nil {
		t.Fatalf("destroy after a failed apply: %v", err)
	}
	observeNothing("after destroying a failed apply")

	// Create, then list and describe.
	p = c.New(t, c.Spec) // as a new run of hoist would
	if err := p.Apply(ctx, Diff(p.Desired(), nil), env); err != nil {
		t.Fatalf("apply: %v", err)
	}
	inv, err = p.Observe(ctx)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	if d := Diff(p.Desired(), inv.Resources); len(d) != 0 {
		t.Errorf("after apply, the plan still holds %s", describeChanges(d))
	}
	seen := map[string]bool{}
	for _, res := range inv.Resources {
		if res.ID == "" {
			t.Errorf("%s %s has no id", res.Kind, res.Name)
		}
		if seen[res.key()] {
			t.Errorf("%s %s found twice", res.Kind, res.Name)
		}
		seen[res.key()] = true
	}
	if len(inv.Hosts) != c.Spec.Count {
		t.Fatalf("observe found %d host(s), want %d: %+v", len(inv.Hosts), c.Spec.Count, inv.Hosts)
	}
	for i, h := range inv.Hosts {
		if h.Name != c.Spec.HostName(i) || h.ID == "" || (h.PublicAddr == "" && h.PrivateAddr == "") {
			t.Errorf("host %d described as %+v, want %s with an id and an address", i, h, c.Spec.HostName(i))
		}
	}

	// Again: nothing to change, and applying nothing changes nothing.
	p = c.New(t, c.Spec)
	again, err := p.Observe(ctx)
	if err != nil {
		t.Fatalf("observe again: %v", err)
	}
	if d := Diff(p.Desired(), again.Resources); len(d) != 0 {
		t.Errorf("a second plan holds %s", describeChanges(d))
	}
	if err := p.Apply(ctx, nil, env); err != nil {
		t.Fatalf("apply of no changes: %v", err)
	}

	// Destroy: nothing of the spec's is left.
	if err := p.Destroy(ctx, again, testLog{t}); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	observeNothing("after destroy")
}

func describeChanges(cs []Change) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("\n  %s %s %s (%s)", c.Action, c.Resource.Kind, c.Resource.Name, c.Resource.Props)
	}
	return s
}
