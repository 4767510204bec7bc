package provision

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hoistdev/hoist/internal/cloudinit"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Options are what the engine works with.
type Options struct {
	Spec     Spec
	Provider Provider
	// State is the record of app's env (LoadState); the engine keeps it
	// up to date as it goes.
	State *State
	// KnownHosts is hoist's known_hosts file, where the hosts' keys go.
	KnownHosts string
	// AuthorizedKeys log in as the spec's user on every new host.
	AuthorizedKeys []string
	// Dial connects to a host, checking its key against KnownHosts and
	// trusting no key it does not already hold.
	Dial func(ctx context.Context, target string) (transport.Conn, error)
	// Prices for the plan's cost.
	Prices *Prices
	// BootTimeout bounds the wait for a new host's SSH. Default 10m.
	BootTimeout time.Duration
	// AllowReplace lets Apply replace hosts whose type, disk or image
	// changed: they come back empty.
	AllowReplace bool
	// Log receives progress for people.
	Log io.Writer
}

type engine struct {
	o  Options
	st *State
}

// MakePlan compares what the spec asks for with what exists, and prices
// the result. Without a provider (offline), nothing is taken to exist.
func MakePlan(ctx context.Context, o Options, offline bool) (*Plan, error) {
	want := o.Provider.Desired()
	var have []Resource
	if !offline {
		inv, err := o.Provider.Observe(ctx)
		if err != nil {
			return nil, err
		}
		have = inv.Resources
	}
	p := &Plan{App: o.Spec.App, Env: o.Spec.Env, Provider: o.Spec.Provider, Region: o.Spec.Region, Changes: Diff(want, have)}
	p.Existing = len(have) - p.Counts()[Delete] - p.Counts()[Update] - p.Counts()[Replace]
	if p.Changes == nil {
		p.Changes = []Change{}
	}
	p.Cost = Estimate(o.Spec, o.Prices)
	p.Compare = Compare(o.Spec, o.Prices)
	return p, nil
}

// Result is what Apply did.
type Result struct {
	// New are the hosts made by this run, as hoist dials them.
	New []string
	// Changed says anything was created, changed or deleted.
	Changed bool
}

// Apply carries out the plan, then makes sure every host answers SSH
// with the key hoist gave it and replaces that key, and records it all
// in the state. Run again after an interruption, it resumes: the plan
// then holds only what is missing.
func Apply(ctx context.Context, o Options, p *Plan) (*Result, error) {
	if o.BootTimeout == 0 {
		o.BootTimeout = 10 * time.Minute
	}
	e := &engine{o: o, st: o.State}
	for _, c := range p.Changes {
		if c.Action == Replace && !o.AllowReplace {
			return nil, usererr.New("%s %s would be replaced (%s, was %s): its disk would start empty", c.Resource.Kind, c.Resource.Name, c.Resource.Props, c.Was.Props).
				WithHint("run hoist provision --replace to do it, or put hoist.yml back as it was")
		}
	}
	e.st.Provider, e.st.Region, e.st.User = o.Spec.Provider, o.Spec.Region, o.Spec.User
	before := secured(e.st)
	if len(p.Changes) > 0 {
		if err := o.Provider.Apply(ctx, p.Changes, ApplyEnv{UserData: e.userData, Log: o.Log}); err != nil {
			// What was made is found again by its tags next time.
			e.st.Save()
			return nil, err
		}
	}
	inv, err := o.Provider.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.record(inv); err != nil {
		return nil, err
	}
	res := &Result{Changed: len(p.Changes) > 0}
	for i := range e.st.Hosts {
		h := &e.st.Hosts[i]
		if err := e.secure(ctx, h); err != nil {
			return nil, err
		}
		if !slices.Contains(before, h.Name) {
			res.New = append(res.New, e.target(h))
		}
	}
	return res, e.st.Save()
}

// secured lists the hosts whose keys were replaced: those an earlier run
// finished.
func secured(st *State) []string {
	var out []string
	for _, h := range st.Hosts {
		if h.KeyReplaced {
			out = append(out, h.Name)
		}
	}
	return out
}

// userData makes a new host's first host key, records its public half
// before the host exists (so that an interrupted run still knows it),
// and renders the user data.
func (e *engine) userData(_ context.Context, name string) ([]byte, error) {
	priv, pub, err := transport.NewHostKey()
	if err != nil {
		return nil, err
	}
	h := e.st.Host(name)
	h.HostKey, h.NextHostKey, h.KeyReplaced = pub, "", false
	if err := e.st.Save(); err != nil {
		return nil, err
	}
	return cloudinit.Render(cloudinit.UserData{
		Hostname: name, User: e.o.Spec.User, AuthorizedKeys: e.o.AuthorizedKeys,
		HostKeyPrivate: priv, HostKeyPublic: pub,
		Comment: fmt.Sprintf("Rendered by hoist provision for app %s, env %s, host %s.", e.o.Spec.App, e.o.Spec.Env, name),
	})
}

// record brings the state in line with what exists: addresses and ids
// from the inventory, keys from the state; hosts that are gone are
// dropped, and their keys forgotten.
func (e *engine) record(inv *Inventory) error {
	var hosts []Host
	for _, ih := range inv.Hosts {
		h := *e.st.Host(ih.Name)
		if h.Addr() != "" && h.Addr() != ih.Addr() {
			// A new address: the old one may be someone else's now.
			transport.SetKnownHosts(e.o.KnownHosts, map[string]string{h.Addr(): ""})
		}
		h.ID, h.Zone, h.PublicAddr, h.PrivateAddr = ih.ID, ih.Zone, ih.PublicAddr, ih.PrivateAddr
		hosts = append(hosts, h)
	}
	forget := map[string]string{}
	for _, h := range e.st.Hosts {
		if !slices.ContainsFunc(hosts, func(x Host) bool { return x.Name == h.Name }) && h.Addr() != "" {
			forget[h.Addr()] = ""
		}
	}
	if err := transport.SetKnownHosts(e.o.KnownHosts, forget); err != nil {
		return err
	}
	e.st.Hosts, e.st.Resources, e.st.Balancer = hosts, inv.Resources, inv.Balancer
	return e.st.Save()
}

// secure connects to a host with the key hoist knows it by and, the
// first time, replaces that key.
func (e *engine) secure(ctx context.Context, h *Host) error {
	if h.HostKey == "" {
		return usererr.New("%s exists but hoist has no record of its host key, so it cannot verify it", h.Name).
			WithHint("the state file %s was lost or is from another machine; `hoist destroy` and provision again, or copy the state file here", e.st.path)
	}
	if err := e.recordKeys(h); err != nil {
		return err
	}
	if h.KeyReplaced && h.NextHostKey == "" {
		return nil
	}
	conn, err := e.connect(ctx, h)
	if err != nil {
		return err
	}
	defer conn.Close()
	if h.NextHostKey != "" {
		// An earlier run was cut while replacing: whichever key the host
		// has now was accepted; start the replacement again from it.
		h.NextHostKey = ""
	}
	if err := e.replaceHostKey(ctx, h, conn); err != nil {
		return err
	}
	// A new connection must now present the new key, and only it is
	// known. sshd re-executes on reload, so it may refuse for a moment.
	again, err := e.connect(ctx, h)
	if err != nil {
		return fmt.Errorf("%s after replacing its host key: %w", h.Name, err)
	}
	return again.Close()
}

// Destroy removes everything the provider finds for the app and env —
// found by tags, so exactly what hoist made for them — checks that
// nothing is left, forgets the hosts' keys and removes the state. It
// returns what it removed.
func Destroy(ctx context.Context, o Options) ([]Resource, error) {
	inv, err := o.Provider.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := o.Provider.Destroy(ctx, inv, o.Log); err != nil {
		return nil, err
	}
	left, err := o.Provider.Observe(ctx)
	if err != nil {
		return nil, err
	}
	if len(left.Resources) > 0 {
		var names []string
		for _, r := range left.Resources {
			names = append(names, r.Kind+" "+r.Name)
		}
		return nil, usererr.New("destroy left %d resource(s) behind: %v", len(names), names).
			WithHint("run hoist destroy again; AWS removes some things only once what uses them is gone")
	}
	forget := map[string]string{}
	for _, h := range o.State.Hosts {
		if h.Addr() != "" {
			forget[h.Addr()] = ""
		}
	}
	if err := transport.SetKnownHosts(o.KnownHosts, forget); err != nil {
		return nil, err
	}
	return inv.Resources, o.State.Remove()
}
