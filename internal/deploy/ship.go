package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

// Transfer is how a release reached one host.
type Transfer struct {
	// From is "this machine", "relay HOST", or "already there".
	From string `json:"from"`
	// Sent is what left this machine for the host: the index and, sent
	// directly, the objects, compressed.
	Sent int64 `json:"sent_bytes"`
	// Needed is the content the host lacked, before compression.
	Needed int64 `json:"needed_bytes"`
	// Fetched is what the host read from the release store for it, as
	// stored (compressed), when it fetched it from there.
	Fetched int64   `json:"fetched_bytes,omitempty"`
	Objects int     `json:"objects"`
	Deltas  int     `json:"deltas"`
	Linked  int     `json:"linked_files"`
	Files   int     `json:"files"`
	Seconds float64 `json:"seconds"`
}

// target is one locked host during a deploy.
type target struct {
	host   string
	client *hostclient.Client
	need   hostproto.Need
	sent   int64 // index bytes sent, then objects
	done   bool  // the release is in place
	report *HostReport
}

// relayFanout is how many hosts fetch from one relay at once.
const relayFanout = 4

// relayLife bounds a relay: past it, a host still fetching fails and is
// sent the release directly.
const relayLife = time.Hour

// distribute gets the release onto every target: the index to each,
// then the objects each lacks, from this machine to one host and from
// host to host after that (or to each from here, without relays or a
// path between hosts). A target whose transfer fails gets its error in
// its report; the others go on.
func (o ShipOptions) distribute(ctx context.Context, s *shipment, ts []*target) {
	each(ts, o.Config.SSH.Parallel, func(t *target) {
		if err := o.prepare(ctx, s, t); err != nil {
			t.report.fail(StatusTransferFailed, err)
		}
	})
	var pending []*target
	for _, t := range ts {
		if t.report.Err == nil && !t.done {
			pending = append(pending, t)
		}
	}
	if !o.Config.Deploy.RelayOn() || len(pending) < 2 {
		o.sendEach(ctx, s, pending)
		return
	}
	o.relayAll(ctx, s, pending)
}

// prepare sends t its index (unless it has it) and learns what it needs.
func (o ShipOptions) prepare(ctx context.Context, s *shipment, t *target) error {
	m := s.art.Manifest
	base, x := s.guess()
	st, err := o.shipIndex(ctx, s, t, base, x)
	if err == nil && st.Rebase {
		base, dict := baseIndex(s.locals, st.Bases)
		st, err = o.shipIndexBytes(ctx, s, t, base, dict)
	}
	switch {
	case err != nil:
		return err
	case st.Unpacked:
		t.done = true
		t.report.Transfer = &Transfer{From: "already there"}
		o.logf(t.host)("release %s is already on the host", m.ID)
		return nil
	case st.Need == nil:
		return fmt.Errorf("%s did not say what it needs of %s", t.host, m.ID)
	}
	t.need = *st.Need
	if s.full {
		// Every object, whatever the host holds.
		t.need = hostproto.Need{Missing: []hostproto.Range{{From: 0, To: len(s.x.Objects())}}, Bytes: s.x.ContentSize()}
	} else if st.Resumed {
		o.logf(t.host)("resuming: the host holds %s of %s", bytesize.String(t.need.Have), bytesize.String(t.need.Have+t.need.Bytes))
	}
	return nil
}

// shipIndex sends t the index as a delta from base (an index sum; its
// index x), "" and nil for none.
func (o ShipOptions) shipIndex(ctx context.Context, s *shipment, t *target, base string, x *release.Index) (hostproto.ShipState, error) {
	var dict []byte
	if x != nil {
		dict = x.Marshal()
	}
	return o.shipIndexBytes(ctx, s, t, base, dict)
}

func (o ShipOptions) shipIndexBytes(ctx context.Context, s *shipment, t *target, base string, dict []byte) (hostproto.ShipState, error) {
	delta, err := s.indexDelta(base, dict)
	if err != nil {
		return hostproto.ShipState{}, err
	}
	t.sent += int64(len(delta))
	return t.client.ShipIndex(ctx, s.art.Manifest, base, delta)
}

// sendEach sends every target its objects from this machine.
func (o ShipOptions) sendEach(ctx context.Context, s *shipment, ts []*target) {
	each(ts, o.Config.SSH.Parallel, func(t *target) {
		if err := o.send(ctx, s, t); err != nil {
			t.report.fail(StatusTransferFailed, err)
		}
	})
}

// each runs fn for every target, at most parallel at once, and waits.
func each(ts []*target, parallel int, fn func(t *target)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, parallel))
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(t)
		}()
	}
	wg.Wait()
}

// send sends t the objects it needs from this machine.
func (o ShipOptions) send(ctx context.Context, s *shipment, t *target) (err error) {
	start := time.Now()
	m := s.art.Manifest
	logf := o.logf(t.host)
	if t.need.Bytes > 0 {
		logf("sending %s of %s's %s", bytesize.String(t.need.Bytes), m.ID, bytesize.String(s.x.ContentSize()))
	}
	progress := func(int64) {}
	if o.Meter != nil && t.need.Bytes > 0 {
		meter := o.Meter(t.host, 0, t.need.Bytes)
		progress = meter.Add
		defer func() { meter.Done(err) }()
	}
	pr, pw := io.Pipe()
	w, err := host.NewRecordWriter(pw)
	if err != nil {
		return err
	}
	var stats transferStats
	go func() {
		var werr error
		stats, werr = s.writeTransfer(w, t.need, progress)
		pw.CloseWithError(werr)
	}()
	got, err := t.client.Receive(ctx, m, pr)
	pr.CloseWithError(errors.New("the host stopped reading")) // ends a writer the host left
	t.sent += w.Sent()
	if err != nil {
		return err
	}
	t.done = true
	t.report.Transfer = &Transfer{From: "this machine", Sent: t.sent, Needed: t.need.Bytes, Objects: stats.Objects,
		Deltas: stats.Deltas, Linked: got.Linked, Files: got.Files, Seconds: time.Since(start).Seconds()}
	logf("sent %s for a %s release (%.1f%%); %d of %d files were already on the host, every file checked",
		bytesize.String(t.sent), bytesize.String(m.Size), 100*float64(t.sent)/float64(m.Size), got.Linked, got.Files)
	return nil
}

// relayAll sends the release from this machine to one host, then has
// the hosts that hold it serve it to the others, each new holder serving
// too. A host that cannot reach a relay, or whose relays keep failing,
// is sent it from here.
func (o ShipOptions) relayAll(ctx context.Context, s *shipment, pending []*target) {
	var sources []*source
	defer func() {
		for _, src := range sources {
			src.stop()
		}
	}()
	// The seed: the first host that takes it from here.
	for len(pending) > 0 && len(sources) == 0 {
		seed := pending[0]
		pending = pending[1:]
		if err := o.send(ctx, s, seed); err != nil {
			seed.report.fail(StatusTransferFailed, err)
			continue
		}
		if src := o.startRelay(ctx, s, seed); src != nil {
			sources = append(sources, src)
		}
	}
	var direct []*target
	attempts := map[*target]int{}
	for len(pending) > 0 && ctx.Err() == nil {
		var live []*source
		for _, src := range sources {
			if !src.broken {
				live = append(live, src)
			}
		}
		if len(live) == 0 {
			// Every relay died: a survivor serves the others first.
			src := o.reseed(ctx, s, &pending, attempts)
			if src == nil {
				direct = append(direct, pending...)
				break
			}
			sources = append(sources, src)
			continue
		}
		// One wave: each live relay serves up to relayFanout hosts.
		n := min(len(pending), len(live)*relayFanout)
		wave := pending[:n]
		pending = pending[n:]
		var wg sync.WaitGroup
		var mu sync.Mutex
		for k, t := range wave {
			src := live[k%len(live)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := o.fetch(ctx, s, t, src)
				mu.Lock()
				defer mu.Unlock()
				var re *hostproto.RelayError
				switch {
				case err == nil:
					if next := o.startRelay(ctx, s, t); next != nil {
						sources = append(sources, next)
					}
				case errors.As(err, &re) && !re.Reached:
					o.logf(t.host)("no path to relay %s (%s); sending it from here", src.host, re.Reason)
					direct = append(direct, t)
				case errors.As(err, &re):
					// The relay died or broke off: fetch the rest elsewhere.
					src.broken = true
					if attempts[t]++; attempts[t] < 3 {
						o.logf(t.host)("relay %s failed (%s); trying another", src.host, re.Reason)
						pending = append(pending, t)
					} else {
						direct = append(direct, t)
					}
				default:
					t.report.fail(StatusTransferFailed, err)
				}
			}()
		}
		wg.Wait()
	}
	// What arrived from a relay stays; the rest goes from here.
	var ready []*target
	for _, t := range direct {
		if attempts[t] > 0 {
			if err := o.prepare(ctx, s, t); err != nil {
				t.report.fail(StatusTransferFailed, err)
				continue
			}
		}
		ready = append(ready, t)
	}
	o.sendEach(ctx, s, ready)
}

// reseed is for when every relay has died: of the pending hosts, the one
// that holds the most of the release (fetched before its relay died) is
// sent the rest from here and serves the others, so that this machine's
// uplink carries about one release, not one per host. It takes that host
// out of pending and returns its relay, or nil when none can serve.
func (o ShipOptions) reseed(ctx context.Context, s *shipment, pending *[]*target, attempts map[*target]int) *source {
	// What each that fetched holds now (its index is sent again).
	var fetched []*target
	for _, t := range *pending {
		if attempts[t] > 0 {
			fetched = append(fetched, t)
		}
	}
	each(fetched, o.Config.SSH.Parallel, func(t *target) {
		if err := o.prepare(ctx, s, t); err != nil {
			t.report.fail(StatusTransferFailed, err)
		}
	})
	var left []*target
	for _, t := range *pending {
		if t.report.Err == nil {
			left = append(left, t)
		}
	}
	*pending = left
	for len(*pending) > 0 && ctx.Err() == nil {
		best := 0
		for i, t := range *pending {
			if t.done || t.need.Bytes < (*pending)[best].need.Bytes && !(*pending)[best].done {
				best = i
			}
		}
		t := (*pending)[best]
		*pending = append((*pending)[:best:best], (*pending)[best+1:]...)
		if !t.done {
			o.logf(t.host)("every relay is gone; it holds the most of the release (%s missing): it is sent the rest and serves the others",
				bytesize.String(t.need.Bytes))
			if err := o.send(ctx, s, t); err != nil {
				t.report.fail(StatusTransferFailed, err)
				continue
			}
		}
		if src := o.startRelay(ctx, s, t); src != nil {
			return src
		}
	}
	return nil
}

// source is a host serving the release to others.
type source struct {
	host   string
	relay  *hostclient.Relay
	token  string
	broken bool
}

func (src *source) stop() {
	if src.relay != nil {
		src.relay.Stop()
	}
}

// startRelay has t serve the release to the others; nil when it cannot.
func (o ShipOptions) startRelay(ctx context.Context, s *shipment, t *target) *source {
	bind, err := hostclient.SSHAddr(ctx, t.client.Conn)
	if err == nil {
		token := randomToken()
		var r *hostclient.Relay
		if r, err = t.client.ServeRelay(ctx, s.art.Manifest.ID, token, bind, relayLife, o.relayLog(t.host)); err == nil {
			return &source{host: t.host, relay: r, token: token}
		}
	}
	o.logf(t.host)("warning: cannot serve the release to the other hosts: %v", err)
	return nil
}

// relayLog passes a relay's own lines on, prefixed with its host.
func (o ShipOptions) relayLog(h string) io.Writer {
	return &fleet.PrefixWriter{W: o.Log, Prefix: h + ": ", Mu: o.LogMu}
}

// fetch has t fetch what it needs from src.
func (o ShipOptions) fetch(ctx context.Context, s *shipment, t *target, src *source) (err error) {
	start := time.Now()
	o.logf(t.host)("fetching %s from %s", bytesize.String(t.need.Bytes), src.host)
	if o.Meter != nil && t.need.Bytes > 0 {
		// The host fetches on its own; its bar fills when it is done.
		meter := o.Meter(t.host, 0, t.need.Bytes)
		defer func() {
			if err == nil {
				meter.Add(t.need.Bytes)
			}
			meter.Done(err)
		}()
	}
	got, err := t.client.FetchFromRelay(ctx, s.art.Manifest, src.relay.Offer, src.token)
	if err != nil {
		return err
	}
	t.done = true
	t.report.Transfer = &Transfer{From: "relay " + src.host, Sent: t.sent, Needed: t.need.Bytes, Objects: got.Objects,
		Linked: got.Linked, Files: got.Files, Seconds: time.Since(start).Seconds()}
	o.logf(t.host)("received %d objects (%s) from %s; %d of %d files were already on the host, every file checked",
		got.Objects, bytesize.String(got.Bytes), src.host, got.Linked, got.Files)
	return nil
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return hex.EncodeToString(b[:])
}
