//go:build integration

package deploy

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/signkey"
	"github.com/hoistdev/hoist/internal/store"
)

// withStore makes a bucket in kumo and sets the fleet's hosts up for it;
// it returns the store options a deploy uses.
func withStore(t *testing.T, fl *fakeFleet) *StoreOptions {
	t.Helper()
	endpoint := kumotest.Start(t)
	loc := bucket.Location{Bucket: "demo-releases", Prefix: "demo/store/", Region: "us-east-1", Endpoint: endpoint, AccessKeyID: "kumo", SecretAccessKey: "kumo"}
	c, err := loc.Client(context.Background(), bucket.Retries{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(loc.Bucket)}); err != nil {
		t.Fatal(err)
	}
	_, key, err := signkey.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	line, _ := signkey.PublicKeyLine(key.Public().(ed25519.PublicKey), "")
	for _, h := range fl.hosts {
		if err := host.WriteStoreSpec(h.layout(), &hostproto.StoreSpec{Location: loc, PublicKey: line}); err != nil {
			t.Fatal(err)
		}
	}
	return &StoreOptions{Location: loc, Key: key, By: "ada@test", Fetch: true, Retries: bucket.Retries{Attempts: 2, MaxBackoff: 50 * time.Millisecond}}
}

// current reads the store's record.
func (so *StoreOptions) current(t *testing.T) *store.Signed {
	t.Helper()
	st, err := store.Open(context.Background(), so.Location, so.Retries)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := st.Current(context.Background())
	if err != nil || raw == nil {
		t.Fatalf("the store's record: %v", err)
	}
	rec, err := store.Verify(so.public(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestShipThroughTheStore: a first deploy puts the release in the store
// and the hosts fetch it from there; a change puts only what changed;
// a deploy that fails is undone and moves the record back; a rollback
// moves it to the release before; one to a release never in the store
// is refused.
func TestShipThroughTheStore(t *testing.T) {
	fl, hosts := newFakeFleet(t, 3)
	so := withStore(t, fl)
	a := newAppRepo(t, "")
	withS := func(o *ShipOptions) { o.Store = so }
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	out, log := a.ship(t, fl, hosts, r1, withS)
	if diff := cmp.Diff(want(hosts, func(int) string { return StatusDeployed }), statuses(out)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	x1, _ := r1.Index()
	for _, r := range out.Hosts {
		if r.Transfer == nil || r.Transfer.From != "store" || r.Transfer.Sent != 0 || r.Transfer.Fetched == 0 {
			t.Errorf("%s: transfer %+v, want it fetched from the store and nothing sent from here", r.Host, r.Transfer)
		}
		if err := release.Verify(x1, fl.hosts[r.Host].layout().Release(r1.Manifest.ID)); err != nil {
			t.Errorf("%s: %v", r.Host, err)
		}
	}
	if s := out.Store; s == nil || !s.Moved || s.Current != r1.Manifest.ID || s.Seq != 1 || s.Objects != len(x1.Objects()) || s.Skipped != 0 {
		t.Fatalf("store report %+v", out.Store)
	}
	if fl.calls["ship-index"]+fl.calls["receive"]+fl.calls["relay-serve"] != 0 {
		t.Errorf("a store deploy shipped all the same: %v", fl.calls)
	}

	r2 := a.change(t, 2)
	out, log = a.ship(t, fl, hosts, r2, withS)
	if diff := cmp.Diff(want(hosts, func(int) string { return StatusDeployed }), statuses(out)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	// A change of msg.txt and of a few bytes of the 2 MiB app: the
	// chunk around the edit and the small file, and the index.
	t.Logf("a one-line change: %+v (release of %d bytes)", *out.Store, r2.Manifest.Size)
	if s := out.Store; s.Objects < 2 || s.Objects > 4 || s.PutBytes > 320<<10 || s.Skipped < 50 || s.Seq != 2 {
		t.Errorf("a one-line change put %+v, want a few objects and KiB for a %d-byte release\n%s", s, r2.Manifest.Size, log)
	}
	for _, r := range out.Hosts {
		if tr := r.Transfer; tr.Objects > 4 || tr.Linked != 1 || tr.Fetched > 320<<10 {
			t.Errorf("%s: fetched %+v, want what changed only", r.Host, tr)
		}
	}
	if !strings.Contains(log, "store: put ") || !strings.Contains(log, "were there") {
		t.Errorf("the log does not say what went in the store:\n%s", log)
	}

	t.Run("a failed deploy moves the record back", func(t *testing.T) {
		r3 := a.change(t, 3)
		fl.fail[hosts[1]] = r3.Manifest.ID
		defer delete(fl.fail, hosts[1])
		out, log := a.ship(t, fl, hosts, r3, withS)
		if out.Stopped == "" {
			t.Fatalf("a deploy with a failing host went through\n%s", log)
		}
		if s := out.Store; s.Moved || s.Current != r2.Manifest.ID || s.Seq != 4 {
			t.Errorf("store report after the undo %+v, want the record back at %s (record 4)", s, r2.Manifest.ID)
		}
		if rec := so.current(t); rec.Release != r2.Manifest.ID || rec.Op != store.OpUndo || rec.Seq != 4 {
			t.Errorf("the store's record %+v, want the undo back to %s", rec.Record, r2.Manifest.ID)
		}
	})

	t.Run("rollback moves the record", func(t *testing.T) {
		fl.events = nil
		_, rs := Rollback(context.Background(), a.options(fl, hosts, withS), "")
		if failed := fleet.Failed(rs); len(failed) > 0 {
			t.Fatalf("rollback: %v", failed)
		}
		rec := so.current(t)
		if rec.Release != r1.Manifest.ID || rec.Op != store.OpRollback || rec.Seq != 5 || rec.Manifest == "" {
			t.Errorf("the store's record after the rollback %+v, want %s", rec.Record, r1.Manifest.ID)
		}
		for _, h := range hosts {
			if cur := fl.hosts[h].layout().CurrentID(); cur != r1.Manifest.ID {
				t.Errorf("%s serves %s after the rollback, want %s", h, cur, r1.Manifest.ID)
			}
		}
		_, rs = Rollback(context.Background(), a.options(fl, hosts, withS), "20200101T000000Z-deadbeefdead")
		for _, r := range rs {
			if r.Err == nil || !strings.Contains(r.Err.Error(), "is not in the store") {
				t.Errorf("%s: a rollback to a release the store never had: %v", r.Host, r.Err)
			}
		}
		if rec := so.current(t); rec.Seq != 5 {
			t.Errorf("a refused rollback moved the record: %+v", rec.Record)
		}
	})

	t.Run("staged: the record stays", func(t *testing.T) {
		r4 := a.change(t, 4)
		out, log := a.ship(t, fl, hosts, r4, func(o *ShipOptions) { o.Store = so; o.Stage = true })
		if diff := cmp.Diff(want(hosts, func(int) string { return StatusStaged }), statuses(out)); diff != "" {
			t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
		}
		if rec := so.current(t); rec.Release != r1.Manifest.ID || out.Store.Moved {
			t.Errorf("a staged deploy moved the record to %s", rec.Release)
		}
	})

	t.Run("a record someone else signed is replaced", func(t *testing.T) {
		st, err := store.Open(context.Background(), so.Location, so.Retries)
		if err != nil {
			t.Fatal(err)
		}
		raw, etag, err := st.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rec, _, _ := store.Parse(raw)
		_, other, _ := signkey.GenerateKey("mallory")
		rec.Seq += 10
		forged, _ := store.Sign(other, rec)
		if _, err := st.Move(context.Background(), forged, etag); err != nil {
			t.Fatal(err)
		}
		r5 := a.change(t, 5)
		out, log := a.ship(t, fl, hosts, r5, withS)
		if !out.Store.Moved || out.Store.Seq != rec.Seq+1 || !strings.Contains(log, "is not one this app's key signed") {
			t.Errorf("a deploy over a forged record: %+v\n%s", out.Store, log)
		}
		if cur := so.current(t); cur.Release != r5.Manifest.ID {
			t.Errorf("the record names %s, want %s", cur.Release, r5.Manifest.ID)
		}
	})
}

func (a *appRepo) options(fl *fakeFleet, hosts []string, o func(*ShipOptions)) ShipOptions {
	so := ShipOptions{Config: a.cfg, Hosts: hosts, Dial: fl.dial, Log: &strings.Builder{}, LogMu: &sync.Mutex{}, WorkDir: a.work}
	o(&so)
	return so
}

// nopMeter is a Meter that counts nothing.
type nopMeter struct{}

func (nopMeter) Add(int64)  {}
func (nopMeter) Done(error) {}

// TestStoreRace: two deploys to different hosts read the same record;
// the one that moves it first wins, and the other is told before any of
// its hosts switches.
func TestStoreRace(t *testing.T) {
	fl, hosts := newFakeFleet(t, 2)
	so := withStore(t, fl)
	a := newAppRepo(t, "")
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	if out, log := a.ship(t, fl, hosts, r1, func(o *ShipOptions) { o.Store = so }); out.Store == nil || !out.Store.Moved {
		t.Fatalf("first deploy: %+v\n%s", out.Store, log)
	}
	slow, fast := a.change(t, 2), a.change(t, 3)
	var once sync.Once
	var fastOut *Outcome
	// The slow deploy has read the record and put its release when its
	// first host begins to fetch; the fast one runs to the end then.
	out, log := a.ship(t, fl, hosts[:1], slow, func(o *ShipOptions) {
		o.Store = so
		o.Meter = func(string, int64, int64) Meter {
			once.Do(func() { fastOut, _ = a.ship(t, fl, hosts[1:], fast, func(o *ShipOptions) { o.Store = so }) })
			return nopMeter{}
		}
	})
	if fastOut == nil || !fastOut.Store.Moved || fastOut.Store.Current != fast.Manifest.ID {
		t.Fatalf("the fast deploy: %+v", fastOut)
	}
	if out.Store.Moved || !strings.Contains(out.Stopped, "another deploy moved the store's record meanwhile, to "+fast.Manifest.ID) {
		t.Errorf("the slow deploy: stopped %q, store %+v\n%s", out.Stopped, out.Store, log)
	}
	if diff := cmp.Diff(want(hosts[:1], func(int) string { return StatusNotSwitched }), statuses(out)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if cur := fl.hosts[hosts[0]].layout().CurrentID(); cur != r1.Manifest.ID {
		t.Errorf("the slow deploy's host serves %s, want %s still", cur, r1.Manifest.ID)
	}
	if rec := so.current(t); rec.Release != fast.Manifest.ID {
		t.Errorf("the store's record names %s, want the winner %s", rec.Release, fast.Manifest.ID)
	}
}
