package deploy

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/store"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A deploy with a release store puts the release there before any host
// switches: the objects the store lacks, its index and manifest, and
// the record of it signed with the operator's key (releases/ID). Hosts
// then fetch it from the store (deploy.ship: store), or are sent it as
// without one. Once every host holds it, the deploy moves the store's
// current record to it with a conditional write against the record it
// read when it began: of two deploys that race, the second is told
// before any of its hosts switches. A deploy that fails and goes back
// moves the record back too.

// StoreOptions is the app's release store.
type StoreOptions struct {
	Location bucket.Location
	// Key signs the records; its public half is what the hosts trust.
	Key ed25519.PrivateKey
	// Destination is the destination the records are for.
	Destination string
	// By names who signs, for people.
	By string
	// Fetch has the hosts fetch releases from the store (deploy.ship:
	// store); otherwise they are sent them from this machine.
	Fetch bool
	// Retries bound each request to the store; zero: store.DefaultRetries.
	Retries bucket.Retries
}

// StoreReport is what a deploy did in the store.
type StoreReport struct {
	Where string `json:"where"`
	// Objects were put; Skipped were there already.
	Objects int `json:"objects"`
	Skipped int `json:"skipped"`
	// PutBytes is what the deploy wrote to the bucket, as stored:
	// objects, index, manifest and records.
	PutBytes int64 `json:"put_bytes"`
	// Current is the release the store's record names after the deploy,
	// and Seq the record's sequence number.
	Current string `json:"current,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	// Moved is set when the deploy left the record naming its release.
	Moved bool   `json:"moved"`
	Error string `json:"error,omitempty"`
}

// storeParallel is how many requests to the store a deploy has going
// at once.
const storeParallel = 16

func (so *StoreOptions) retries() bucket.Retries {
	if so.Retries.Attempts > 0 {
		return so.Retries
	}
	return store.DefaultRetries
}

func (so *StoreOptions) public() ed25519.PublicKey { return so.Key.Public().(ed25519.PublicKey) }

// publication is a release put in the store, and the record moves that
// follow.
type publication struct {
	so     *StoreOptions
	st     *store.Store
	report *StoreReport
	// prev is the record the store held when the deploy began (nil when
	// none, or one not signed by the key); etag is the ETag of what is
	// there now as far as this deploy knows ("" for nothing).
	prev *store.Signed
	etag string
	// raw is the signed record of the release.
	raw []byte
	rec *store.Record
	// size is the release's content: what a host's bar fills to.
	size int64
}

// opened is the store as a deploy or a rollback found it.
type opened struct {
	st *store.Store
	// cur is the current record, checked with the key; nil when there is
	// none, or when the key did not sign it.
	cur *store.Signed
	// etag is the ETag of what is at current ("" for nothing): what the
	// move that replaces it names.
	etag string
	// seq is the number the next record gets.
	seq uint64
}

// openStore opens the store and reads its current record, checked with
// the key. A record the key did not sign is named and left out: this
// deploy replaces it, numbered after it all the same (when its number
// is not absurd), so that hosts that keep the highest number they saw
// take the new record.
func (o ShipOptions) openStore(ctx context.Context) (*opened, error) {
	so := o.Store
	st, err := store.Open(ctx, so.Location, so.retries())
	if err != nil {
		return nil, err
	}
	raw, etag, err := st.Current(ctx)
	if err != nil {
		return nil, err
	}
	op := &opened{st: st, etag: etag, seq: 1}
	if raw == nil {
		return op, nil
	}
	cur, err := store.Verify(so.public(), raw)
	if err == nil && (cur.App != o.Config.App || cur.Destination != so.Destination) {
		err = fmt.Errorf("it is a record of %s (destination %q)", cur.App, cur.Destination)
	}
	if err != nil {
		o.logf("store")("warning: the record at %s is not one this app's key signed (%v): someone else wrote it; it is replaced", st.CurrentKey(), err)
		if r, _, perr := store.Parse(raw); perr == nil && r.Seq < 1<<40 {
			op.seq = r.Seq + 1
		}
		return op, nil
	}
	op.cur, op.seq = cur, cur.Seq+1
	return op, nil
}

// publish puts the artifact in the store and signs its record; the
// record is not moved yet.
func (o ShipOptions) publish(ctx context.Context, art *build.Artifact, x *release.Index) (*publication, error) {
	so := o.Store
	op, err := o.openStore(ctx)
	if err != nil {
		return nil, err
	}
	st, prev := op.st, op.cur
	p := &publication{so: so, st: st, prev: prev, etag: op.etag, report: &StoreReport{Where: st.Where()}, size: x.ContentSize()}
	if prev != nil {
		p.report.Current, p.report.Seq = prev.Release, prev.Seq
	}
	start := time.Now()
	missing, skipped, err := o.missingObjects(ctx, st, prev, x)
	if err != nil {
		return p, err
	}
	p.report.Skipped = skipped
	n, size, err := putObjects(ctx, st, art, x, missing)
	p.report.Objects = n
	if err != nil {
		return p, err
	}
	if err := st.PutIndex(ctx, x); err != nil {
		return p, err
	}
	msum, err := st.PutManifest(ctx, art.Manifest)
	if err != nil {
		return p, err
	}
	ssum, err := o.putSpec(ctx, st)
	if err != nil {
		return p, err
	}
	p.rec = &store.Record{App: o.Config.App, Destination: so.Destination, Release: art.Manifest.ID, Manifest: msum, Index: art.Manifest.Index,
		Spec: ssum, Seq: op.seq, Op: store.OpDeploy, At: time.Now().UTC().Truncate(time.Second), By: so.By}
	if prev != nil {
		p.rec.Prev = prev.Sum()
	}
	if p.raw, err = store.Sign(so.Key, p.rec); err != nil {
		return p, err
	}
	if err := st.PutRelease(ctx, p.raw, art.Manifest.ID); err != nil {
		return p, err
	}
	p.report.PutBytes = st.PutBytes()
	o.logf("store")("put %d objects (%s of content) of %s, %d were there; %s written to %s in %.1fs",
		n, bytesize.String(size), art.Manifest.ID, skipped, bytesize.String(p.report.PutBytes), st.Where(), time.Since(start).Seconds())
	return p, nil
}

// putSpec puts the host spec releases are activated with, which a
// record names so that a host can switch to its release by itself.
func (o ShipOptions) putSpec(ctx context.Context, st *store.Store) (string, error) {
	b, err := json.Marshal(Spec(o.Config))
	if err != nil {
		return "", fmt.Errorf("encode host spec: %w", err)
	}
	return st.PutSpec(ctx, b)
}

// missingObjects are the objects of x the store lacks: those of the
// release its record names are taken to be there (a host checks every
// one it fetches all the same), the others are asked for. With o.Full,
// every object is put again.
func (o ShipOptions) missingObjects(ctx context.Context, st *store.Store, prev *store.Signed, x *release.Index) (map[string]bool, int, error) {
	objs := x.Objects()
	missing := map[string]bool{}
	if o.Full {
		for _, ob := range objs {
			missing[ob.Sum] = true
		}
		return missing, 0, nil
	}
	known := map[string]bool{}
	if prev != nil {
		if px, _, err := st.Index(ctx, prev.Index); err == nil {
			for _, ob := range px.Objects() {
				known[ob.Sum] = true
			}
		}
	}
	var ask []string
	for _, ob := range objs {
		if !known[ob.Sum] {
			ask = append(ask, ob.Sum)
		}
	}
	var mu sync.Mutex
	var firstErr error
	parallel(len(ask), storeParallel, func(i int) {
		has, err := st.Has(ctx, ask[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil && !has {
			missing[ask[i]] = true
		}
	})
	return missing, len(objs) - len(missing), firstErr
}

// parallel runs fn(0..n-1), at most k at once, and waits.
func parallel(n, k int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, k))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// putObjects reads the missing objects out of the artifact's payload
// and puts them, several at once; it returns how many, and their size.
func putObjects(ctx context.Context, st *store.Store, art *build.Artifact, x *release.Index, missing map[string]bool) (int, int64, error) {
	if len(missing) == 0 {
		return 0, 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		sum  string
		data []byte
	}
	jobs := make(chan job, storeParallel)
	var mu sync.Mutex
	var firstErr error
	var n int
	var size int64
	var wg sync.WaitGroup
	for range storeParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := st.PutObject(ctx, j.sum, j.data)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					n++
					size += int64(len(j.data))
				}
				mu.Unlock()
			}
		}()
	}
	err := art.EachFile(x, holdsAny(missing), func(e release.Entry, r io.Reader) error {
		objects := e.Chunks
		if len(objects) == 0 {
			objects = []release.Chunk{{Sum: e.Sum, Size: e.Size}}
		}
		for _, c := range objects {
			data := make([]byte, c.Size)
			if _, err := io.ReadFull(r, data); err != nil {
				return fmt.Errorf("read %s: %w", e.Path, err)
			}
			if !missing[c.Sum] {
				continue
			}
			delete(missing, c.Sum) // an object in two files goes once
			select {
			case jobs <- job{c.Sum, data}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return n, size, firstErr
	}
	return n, size, err
}

// move points the store's current record at the release, if it is
// still the one the deploy read.
func (p *publication) move(ctx context.Context) error {
	etag, err := p.st.Move(ctx, p.raw, p.etag)
	if errors.Is(err, store.ErrMoved) {
		return p.moved(ctx, err)
	}
	if err != nil {
		return err
	}
	p.etag = etag
	p.report.Current, p.report.Seq, p.report.Moved = p.rec.Release, p.rec.Seq, true
	p.report.PutBytes = p.st.PutBytes()
	return nil
}

// moved is the error of a move that another write beat: it names what
// the record says now.
func (p *publication) moved(ctx context.Context, err error) error {
	what := "another deploy moved the store's record meanwhile"
	if raw, _, rerr := p.st.Current(ctx); rerr == nil && raw != nil {
		if r, _, perr := store.Parse(raw); perr == nil {
			what = fmt.Sprintf("another deploy moved the store's record meanwhile, to %s (%s by %s at %s)", r.Release, r.Op, orSomeone(r.By), r.At.Format(time.RFC3339))
		}
	}
	return usererr.Wrap(err, "%s", what).
		WithHint("no host switched to this release; deploy again once the other deploy is done")
}

func orSomeone(by string) string {
	if by == "" {
		return "someone"
	}
	return by
}

// moveBack points the record at the release it named before the
// deploy, when the deploy went back.
func (p *publication) moveBack(ctx context.Context, log func(string, ...any)) {
	if !p.report.Moved {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if p.prev == nil {
		log("warning: the store's record still names %s, which no host serves: there was no earlier record to go back to; the next deploy replaces it", p.rec.Release)
		return
	}
	back := p.prev.Record
	back.Seq, back.Prev, back.Op, back.At, back.By = p.rec.Seq+1, release.SumBytes(p.raw), store.OpUndo, time.Now().UTC().Truncate(time.Second), p.so.By
	raw, err := store.Sign(p.so.Key, &back)
	if err == nil {
		_, err = p.st.Move(ctx, raw, p.etag)
	}
	if err != nil {
		log("warning: the store's record could not be moved back to %s: %v; it names %s, which no host serves", back.Release, err, p.rec.Release)
		return
	}
	p.report.Current, p.report.Seq, p.report.Moved = back.Release, back.Seq, false
	p.report.PutBytes = p.st.PutBytes()
	log("the store's record is back at %s", back.Release)
}

// fetchAll has every target fetch the release from the store.
func (o ShipOptions) fetchAll(ctx context.Context, p *publication, ts []*target) {
	each(ts, o.Config.SSH.Parallel, func(t *target) {
		if err := o.fetchStore(ctx, p, t); err != nil {
			t.report.fail(StatusTransferFailed, err)
		}
	})
}

func (o ShipOptions) fetchStore(ctx context.Context, p *publication, t *target) (err error) {
	start := time.Now()
	if o.Meter != nil {
		// The host fetches on its own; its bar fills when it is done.
		meter := o.Meter(t.host, 0, p.size)
		defer func() {
			if err == nil {
				meter.Add(p.size)
			}
			meter.Done(err)
		}()
	}
	got, err := t.client.FetchFromStore(ctx, p.raw)
	if err != nil {
		return err
	}
	t.done = true
	if got.Already {
		t.report.Transfer = &Transfer{From: "already there"}
		o.logf(t.host)("release %s is already on the host", p.rec.Release)
		return nil
	}
	t.report.Transfer = &Transfer{From: "store", Needed: got.Bytes, Objects: got.Objects, Linked: got.Linked, Files: got.Files,
		Fetched: got.Fetched, Seconds: time.Since(start).Seconds()}
	o.logf(t.host)("fetched %d objects (%s) from the store; %d of %d files were already on the host, every file checked",
		got.Objects, bytesize.String(got.Fetched), got.Linked, got.Files)
	return nil
}

// rollbackStore is Rollback with a store: the record moves to the
// release first, from the record that release was published with, and
// the hosts switch once it has.
func (o ShipOptions) rollbackStore(ctx context.Context, id string) ([]string, []fleet.Result) {
	members, unlock, refused, _ := o.lockAll(ctx, Holder("rollback"))
	defer unlock()
	if refused != nil {
		return make([]string, len(refused)), refused
	}
	failAll := func(err error) ([]string, []fleet.Result) {
		out := make([]fleet.Result, len(members))
		for i, m := range members {
			out[i] = fleet.Result{Host: m.Host, Err: m.Err}
			if m.Err == nil {
				out[i].Err = err
			}
		}
		return make([]string, len(out)), out
	}
	target := id
	if target == "" {
		var err error
		if target, err = o.previousOfAll(ctx, members); err != nil {
			return failAll(err)
		}
	}
	raw, err := o.storeRollback(ctx, target, func(raw []byte) []fleet.Result {
		if !o.Store.Fetch {
			return nil
		}
		// Every host gets the release first: one that pruned it fetches it.
		rs := fleet.EachMember(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
			_, err := o.clientOf(conn).FetchFromStore(ctx, raw)
			return err
		})
		for i, r := range rs {
			if r.Err != nil && members[i].Err == nil {
				return rs
			}
		}
		return nil
	})
	var held fleetErrors
	if errors.As(err, &held) {
		return make([]string, len(held.results)), held.results
	}
	if err != nil {
		return failAll(err)
	}
	o.logf("store")("the record names %s now (record %d)", target, raw.Seq)
	spec := Spec(o.Config)
	spec.BeforeSwitch, spec.AfterSwitch = "", ""
	return fleet.MapMembers(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) (string, error) {
		o.logf(h)("rolling back to %s", target)
		return activated(target, o.activate(ctx, h, o.clientOf(conn), spec, target, "rollback"))
	})
}

// fleetErrors carries per-host results through an error.
type fleetErrors struct{ results []fleet.Result }

func (f fleetErrors) Error() string { return "hosts failed" }

// storeRollback signs a record of release id, taken from the record it
// was published with, runs before (the hosts fetch it; results with a
// failure stop it), then moves the current record to it. It returns
// the record.
func (o ShipOptions) storeRollback(ctx context.Context, id string, before func(raw []byte) []fleet.Result) (*store.Record, error) {
	so := o.Store
	op, err := o.openStore(ctx)
	if err != nil {
		return nil, err
	}
	st, cur, etag := op.st, op.cur, op.etag
	relRaw, err := st.Release(ctx, id)
	if errors.Is(err, store.ErrMissing) {
		return nil, usererr.New("release %s is not in the store %s: it was not deployed through it", id, st.Where()).
			WithHint("roll back to a release deployed with the store (hoist releases lists them), or deploy the commit you want")
	}
	if err != nil {
		return nil, err
	}
	rel, err := store.Verify(so.public(), relRaw)
	if err == nil && (rel.App != o.Config.App || rel.Destination != so.Destination || rel.Release != id) {
		err = fmt.Errorf("it is the record of %s of %s (destination %q)", rel.Release, rel.App, rel.Destination)
	}
	if err != nil {
		return nil, usererr.Wrap(err, "the store's record of release %s cannot be trusted", id).
			WithHint("deploy that commit again to put it back in the store")
	}
	rec := rel.Record
	// The release goes back with hoist.yml as it is now, as a rollback
	// over SSH activates it.
	if rec.Spec, err = o.putSpec(ctx, st); err != nil {
		return nil, err
	}
	rec.Seq, rec.Prev, rec.Op, rec.At, rec.By = op.seq, "", store.OpRollback, time.Now().UTC().Truncate(time.Second), so.By
	if cur != nil {
		rec.Prev = cur.Sum()
	}
	raw, err := store.Sign(so.Key, &rec)
	if err != nil {
		return nil, err
	}
	if rs := before(raw); rs != nil {
		return nil, fleetErrors{rs}
	}
	if _, err := st.Move(ctx, raw, etag); err != nil {
		if errors.Is(err, store.ErrMoved) {
			p := &publication{st: st}
			return nil, p.moved(ctx, err)
		}
		return nil, err
	}
	return &rec, nil
}

// previousOfAll is the release a rollback without an id goes to: the
// one before the current on every host, which must be the same.
func (o ShipOptions) previousOfAll(ctx context.Context, members []fleet.Member) (string, error) {
	prevs, results := fleet.MapMembers(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, _ string, conn transport.Conn) (string, error) {
		return o.clientOf(conn).Previous(ctx)
	})
	seen := map[string][]string{}
	for i, r := range results {
		if r.Err != nil {
			if members[i].Err != nil {
				continue // unreachable: reported as such
			}
			return "", fmt.Errorf("%s: %w", r.Host, r.Err)
		}
		seen[prevs[i]] = append(seen[prevs[i]], r.Host)
	}
	switch {
	case len(seen) == 1:
		for id := range seen {
			if id == "" {
				return "", usererr.New("there is no earlier release to roll back to")
			}
			return id, nil
		}
	case len(seen) == 0:
		return "", usererr.New("no host could be asked which release to roll back to")
	}
	var parts []string
	for id, hs := range seen {
		parts = append(parts, fmt.Sprintf("%s on %v", orNone(id), hs))
	}
	return "", usererr.New("the hosts' earlier releases differ (%s): the store's record names one release", joinSorted(parts)).
		WithHint("name the release to roll back to: hoist rollback ID (hoist releases lists them)")
}

func orNone(id string) string {
	if id == "" {
		return "none"
	}
	return id
}

func joinSorted(parts []string) string {
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}
