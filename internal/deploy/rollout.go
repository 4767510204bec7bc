package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// What happened on a host, in a deploy's report.
const (
	StatusDeployed       = "deployed"        // it serves the new release
	StatusUnreachable    = "unreachable"     // it could not be reached
	StatusLocked         = "not changed"     // another deploy holds a lock
	StatusTransferFailed = "transfer failed" // the release did not get there; nothing changed
	StatusFailed         = "failed"          // its switch failed; it serves the previous release
	StatusRolledBack     = "rolled back"     // it switched, then went back when another host failed
	StatusNotSwitched    = "not switched"    // it has the release; the deploy stopped before its turn
	StatusStaged         = "staged"          // it has the release, as asked (--stage)
)

// HostReport is what a deploy did on one host.
type HostReport struct {
	Host   string `json:"host"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Previous is the release the host served before; Serving the one
	// it serves after, as far as hoist knows.
	Previous string    `json:"previous,omitempty"`
	Serving  string    `json:"serving,omitempty"`
	Transfer *Transfer `json:"transfer,omitempty"`
	// Group is the host's turn: 1 for the canaries (or the first group).
	Group int `json:"group,omitempty"`
	// OK is set when the host ends deployed (or staged, as asked).
	OK bool `json:"ok"`

	Err error `json:"-"`
}

// succeeded reports whether the host ended as the deploy asked.
func (r *HostReport) succeeded() bool {
	return r.Err == nil && (r.Status == StatusDeployed || r.Status == StatusStaged)
}

func (r *HostReport) fail(status string, err error) {
	r.Status, r.Err, r.Error = status, err, err.Error()
}

// Outcome is what a deploy did, host by host.
type Outcome struct {
	Release string        `json:"release"`
	Hosts   []*HostReport `json:"hosts"`
	// Stopped says why the deploy stopped switching hosts, when it did.
	Stopped string `json:"stopped,omitempty"`
	// Store is what the deploy did in the release store, when there is
	// one.
	Store *StoreReport `json:"store,omitempty"`
}

// Results are the outcome as per-host errors.
func (out *Outcome) Results() []fleet.Result {
	rs := make([]fleet.Result, len(out.Hosts))
	for i, r := range out.Hosts {
		rs[i] = fleet.Result{Host: r.Host, Err: r.Err}
		if r.Err == nil && !r.succeeded() {
			rs[i].Err = usererr.New("%s: %s", r.Status, out.Stopped)
		}
	}
	return rs
}

// Summary counts the hosts by what happened to them, in the order a
// deploy goes: "1 failed, 6 rolled back, 5 not switched".
func (out *Outcome) Summary() string {
	order := []string{StatusUnreachable, StatusLocked, StatusTransferFailed, StatusFailed, StatusRolledBack, StatusNotSwitched, StatusStaged, StatusDeployed}
	n := map[string]int{}
	for _, r := range out.Hosts {
		if !slices.Contains(order, r.Status) {
			order = append(order, r.Status)
		}
		n[r.Status]++
	}
	var parts []string
	for _, st := range order {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
		}
	}
	return strings.Join(parts, ", ")
}

// Balancer is a load balancer in front of the hosts: a host leaves it
// before it switches and comes back once the balancer finds it healthy.
type Balancer interface {
	// Deregister takes the host out and returns once its connections
	// have drained.
	Deregister(ctx context.Context, host string) error
	// Register puts the host back and returns once the balancer reports
	// it healthy.
	Register(ctx context.Context, host string) error
}

// Ship takes the artifact to every host, then switches them to it as
// hoist.yml's deploy section says, and undoes the switch everywhere when
// a host fails.
func Ship(ctx context.Context, o ShipOptions, art *build.Artifact) *Outcome {
	out := &Outcome{Release: art.Manifest.ID}
	defer func() {
		for _, r := range out.Hosts {
			r.OK = r.succeeded()
		}
	}()
	members, unlock, refused, why := o.lockAll(ctx, Holder("deploy "+art.Manifest.ID))
	defer unlock()
	for i, m := range members {
		r := &HostReport{Host: m.Host}
		out.Hosts = append(out.Hosts, r)
		switch {
		case m.Err != nil:
			r.fail(StatusUnreachable, m.Err)
		case refused != nil:
			r.fail(StatusLocked, refused[i].Err)
		}
	}
	if refused != nil {
		out.Stopped = why
		return out
	}
	failAll := func(err error) {
		for _, r := range out.Hosts {
			if r.Err == nil {
				r.fail(StatusTransferFailed, err)
			}
		}
	}
	x, err := art.Index()
	if err != nil {
		failAll(err)
		return out
	}
	var pub *publication
	if o.Store != nil {
		pub, err = o.publish(ctx, art, x)
		if pub != nil {
			out.Store = pub.report
		}
		if err != nil {
			if out.Store != nil {
				out.Store.Error = err.Error()
			}
			out.Stopped = "the release could not be put in the store: " + err.Error()
			failAll(err)
			return out
		}
	}
	var ts []*target
	for i, m := range members {
		if m.Err == nil {
			ts = append(ts, &target{host: m.Host, client: o.client(m), report: out.Hosts[i]})
		}
	}
	if pub != nil && o.Store.Fetch {
		o.fetchAll(ctx, pub, ts)
	} else {
		s, err := newShipment(art, o.WorkDir, o.Full)
		if err != nil {
			failAll(err)
			return out
		}
		o.distribute(ctx, s, ts)
	}
	if o.Stage {
		for _, t := range ts {
			if t.report.Err == nil {
				t.report.Status = StatusStaged
			}
		}
		return out
	}
	each(ts, o.Config.SSH.Parallel, func(t *target) {
		if t.report.Err != nil {
			return
		}
		if err := o.beforeSwitch(ctx, t); err != nil {
			t.report.fail(StatusTransferFailed, err)
			return
		}
		t.report.Status, t.report.Serving = StatusNotSwitched, t.report.Previous
	})
	var ready []*target
	for _, t := range ts {
		if t.report.Err == nil {
			ready = append(ready, t)
		}
	}
	if pub != nil && len(ready) > 0 {
		// The record moves before any host switches: a deploy that lost
		// the race to another one changes nothing.
		if err := pub.move(ctx); err != nil {
			out.Store.Error = err.Error()
			out.Stopped = err.Error()
			return out
		}
		o.logf("store")("the record names %s now (record %d)", pub.rec.Release, pub.rec.Seq)
	}
	o.rollout(ctx, out, art.Manifest.ID, ready)
	if pub != nil && out.Stopped != "" {
		pub.moveBack(ctx, o.logf("store"))
	}
	return out
}

// beforeSwitch reads what t serves now and sends it the secrets.
func (o ShipOptions) beforeSwitch(ctx context.Context, t *target) error {
	st, err := t.client.Status(ctx)
	if err != nil {
		return err
	}
	t.report.Previous = st.Current
	if o.SendEnv {
		if err := t.client.SetEnv(ctx, o.Env); err != nil {
			return fmt.Errorf("send secrets: %w", err)
		}
	}
	return nil
}

// groups splits n hosts into the turns they switch in: the canaries,
// then max_in_flight at a time (all at once when it is unset). Behind a
// balancer the default is one at a time, and at least one host stays in.
func groups(n int, d config.Deploy, balanced bool) [][]int {
	var out [][]int
	next := 0
	take := func(k int) {
		var g []int
		for ; k > 0 && next < n; k-- {
			g = append(g, next)
			next++
		}
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	take(min(d.Canary.Hosts, n))
	size := n
	if d.MaxInFlight.Set() {
		size = d.MaxInFlight.Of(n)
	} else if balanced {
		size = 1
	}
	if balanced {
		size = min(size, max(1, n-1))
	}
	for next < n {
		take(size)
	}
	return out
}

// rollout switches the ready hosts group by group. When a host fails,
// it stops, and every host that switched goes back to its previous
// release.
func (o ShipOptions) rollout(ctx context.Context, out *Outcome, id string, ready []*target) {
	spec := Spec(o.Config)
	var switched []*target
	canaries := min(o.Config.Deploy.Canary.Hosts, len(ready))
	turns := groups(len(ready), o.Config.Deploy, o.Balancer != nil)
	for gi, g := range turns {
		for _, i := range g {
			ready[i].report.Group = gi + 1
		}
	}
	for gi, g := range turns {
		group := make([]*target, len(g))
		for k, i := range g {
			group[k] = ready[i]
		}
		if gi > 0 || canaries > 0 {
			o.logf(fmt.Sprintf("group %d", gi+1))("switching %d host(s)", len(group))
		}
		failed := o.switchGroup(ctx, spec, id, group)
		for _, t := range group {
			if t.report.Status == StatusDeployed {
				switched = append(switched, t)
			}
		}
		if failed != nil {
			out.Stopped = fmt.Sprintf("%s failed to switch: %v", failed.host, failed.report.Err)
			break
		}
		if gi == 0 && canaries > 0 && len(ready) > canaries {
			if bad := o.watch(ctx, spec, id, group); bad != nil {
				out.Stopped = fmt.Sprintf("canary %s failed while watched: %v", bad.host, bad.report.Err)
				break
			}
		}
	}
	if out.Stopped == "" {
		return
	}
	o.undo(ctx, switched)
}

// switchGroup switches a group's hosts at once and returns one that
// failed, or nil.
func (o ShipOptions) switchGroup(ctx context.Context, spec *hostproto.Spec, id string, group []*target) *target {
	each(group, len(group), func(t *target) {
		if err := o.switchHost(ctx, spec, id, "deploy", t); err != nil {
			t.report.fail(StatusFailed, err)
			return
		}
		t.report.Status, t.report.Serving = StatusDeployed, id
	})
	for _, t := range group {
		if t.report.Err != nil {
			return t
		}
	}
	return nil
}

// switchHost activates release id on t (op: what for, in the host's
// audit trail), taking it out of the balancer meanwhile.
func (o ShipOptions) switchHost(ctx context.Context, spec *hostproto.Spec, id, op string, t *target) error {
	logf := o.logf(t.host)
	if o.Balancer != nil {
		logf("leaving the balancer (draining its connections)")
		if err := o.Balancer.Deregister(ctx, t.host); err != nil {
			return err
		}
	}
	logf("activating %s", id)
	err := o.activate(ctx, t.host, t.client, spec, id, op)
	if o.Balancer != nil {
		// Back in either way: a failed release left the previous one serving.
		logf("back in the balancer, waiting for it to find the host healthy")
		if berr := o.Balancer.Register(ctx, t.host); err == nil {
			err = berr
		}
	}
	return err
}

// watch checks the canaries' health every health.interval for
// deploy.canary.watch and returns one that failed, or nil.
func (o ShipOptions) watch(ctx context.Context, spec *hostproto.Spec, id string, canaries []*target) *target {
	d := o.Config.Deploy.Canary.Watch.Duration
	o.logf("canary")("watching %d host(s) for %s", len(canaries), d)
	deadline := time.Now().Add(d)
	tick := time.NewTicker(o.Config.Health.Interval.Duration)
	defer tick.Stop()
	for {
		for _, t := range canaries {
			cur, err := t.client.Check(ctx, spec)
			if err == nil && cur != id {
				err = fmt.Errorf("it serves %s, not %s", cur, id)
			}
			if err != nil {
				t.report.fail(StatusFailed, err)
				return t
			}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			canaries[0].report.fail(StatusFailed, ctx.Err())
			return canaries[0]
		case <-tick.C:
		}
	}
}

// undo takes every switched host back to the release it served before,
// without the deploy hooks (that release ran before).
func (o ShipOptions) undo(ctx context.Context, switched []*target) {
	if len(switched) == 0 {
		return
	}
	// A deploy cancelled by the operator still undoes what it did.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	spec := Spec(o.Config)
	spec.BeforeSwitch, spec.AfterSwitch = "", ""
	parallel := len(switched)
	if o.Balancer != nil {
		parallel = 1
	}
	each(switched, parallel, func(t *target) {
		prev := t.report.Previous
		if prev == "" {
			t.report.fail(StatusFailed, errors.New("switched, and there is no earlier release to go back to"))
			return
		}
		o.logf(t.host)("going back to %s", prev)
		if err := o.switchHost(ctx, spec, prev, "undo deploy", t); err != nil {
			t.report.fail(StatusFailed, fmt.Errorf("going back to %s failed: %w", prev, err))
			return
		}
		t.report.Status, t.report.Serving = StatusRolledBack, prev
	})
}
