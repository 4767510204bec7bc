package host

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/signkey"
	rstore "github.com/hoistdev/hoist/internal/store"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A host fetches releases from the app's release store (internal/store)
// instead of being sent them: given a signed record, it checks the
// signature with the one public key setup left it, fetches the
// manifest and index the record names, then the objects it lacks into
// its pack in uploads/, each checked by its sha256, and assembles the
// release as a shipped one is (receiveRelease): every file checked, one
// rename into releases/ID. Nothing a bucket holds is trusted that the
// record's signature does not vouch for, through the sums it names.

// storeFile holds the app's StoreSpec on the host (0600: it may hold
// the bucket's credentials); storeSeenFile the highest sequence number
// of a record this host read from the bucket itself.
func (l Layout) storeFile() string     { return filepath.Join(l.Root, "store.json") }
func (l Layout) storeSeenFile() string { return filepath.Join(l.Root, "store.seen") }

// WriteStoreSpec keeps s, the app's store, on the host: nil leaves it
// as it is, one without a bucket removes it. Setup calls it.
func WriteStoreSpec(l Layout, s *hostproto.StoreSpec) error {
	if s == nil {
		return nil
	}
	if s.Bucket == "" {
		if err := os.Remove(l.storeFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove store: %w", err)
		}
		return nil
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b, _ := json.Marshal(s) // plain struct: cannot fail
	return writeFileAtomic(l.storeFile(), b, 0o600)
}

// readStoreSpec is the store setup left, or an error that says to set
// the host up with one.
func readStoreSpec(l Layout) (*hostproto.StoreSpec, error) {
	b, err := os.ReadFile(l.storeFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, usererr.New("this host was set up for %s without a release store", l.App).
			WithHint("run hoist setup: it gives the hosts the store section of hoist.yml")
	}
	if err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	var s hostproto.StoreSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	return &s, s.Validate()
}

// storeFetchParallel is how many objects a host fetches at once.
const storeFetchParallel = 8

// fetchFromStore fetches the release raw (a signed record) names, or
// the store's current record when raw is nil, into releases/ID.
// dest is the destination the host serves: a record of another is
// refused. The client that passes raw holds the deploy lock; without
// it the fetch takes the lock itself.
func fetchFromStore(ctx context.Context, l Layout, dest string, raw []byte, r bucket.Retries) (out hostproto.StoreFetched, err error) {
	st, key, err := openHostStore(ctx, l, r)
	if err != nil {
		return out, err
	}
	defer func() { out.Fetched = st.GotBytes() }()
	if raw != nil {
		_, out, err = fetchRecord(ctx, l, dest, st, key, raw, false)
		return out, err
	}
	unlock, err := lockHost(l, "store-fetch")
	if err != nil {
		return out, err
	}
	defer unlock()
	if raw, err = currentRecord(ctx, st); err != nil {
		return out, err
	}
	_, out, err = fetchRecord(ctx, l, dest, st, key, raw, true)
	return out, err
}

// openHostStore opens the store setup left on the host, with the one
// key its records must be signed with.
func openHostStore(ctx context.Context, l Layout, r bucket.Retries) (*rstore.Store, ed25519.PublicKey, error) {
	spec, err := readStoreSpec(l)
	if err != nil {
		return nil, nil, err
	}
	key, err := signkey.ParsePublicKey(spec.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	st, err := rstore.Open(ctx, spec.Location, r)
	return st, key, err
}

// lockHost takes the host's deploy lock for op, a thing the host does
// by itself, and returns what gives it back.
func lockHost(l Layout, op string) (func(), error) {
	holder := op + " " + randomSuffix()
	if err := AcquireLock(l, hostproto.Lock{Holder: holder, Op: op, Since: time.Now().UTC().Truncate(time.Second), PID: os.Getpid()}); err != nil {
		return nil, err
	}
	return func() { _ = releaseLock(l, holder, false) }, nil
}

// currentRecord is the store's current record, as stored.
func currentRecord(ctx context.Context, st *rstore.Store) ([]byte, error) {
	raw, _, err := st.Current(ctx)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, usererr.New("the store %s has no current record: nothing was deployed through it yet", st.Where())
	}
	return raw, nil
}

// fetchRecord fetches the release the signed record raw names, once
// the record is checked; fromBucket is set for a record the host read
// from the bucket itself, which may not be older than one it read
// before.
func fetchRecord(ctx context.Context, l Layout, dest string, st *rstore.Store, key ed25519.PublicKey, raw []byte, fromBucket bool) (*rstore.Signed, hostproto.StoreFetched, error) {
	var out hostproto.StoreFetched
	rec, err := verifyRecord(l, dest, key, raw, st.Where())
	if err != nil {
		return nil, out, err
	}
	out.Release, out.Seq = rec.Release, rec.Seq
	if fromBucket {
		if seen := storeSeen(l); rec.Seq < seen {
			return rec, out, usererr.New("refused the store's record: it names %s with sequence number %d, and this host read number %d from the store before: an old record was put back",
				rec.Release, rec.Seq, seen).WithHint("deploy again (or roll back) to write a new record")
		}
	}
	m, err := st.Manifest(ctx, rec.Manifest)
	if err != nil {
		return rec, out, refusedRelease(rec, err)
	}
	if m.ID != rec.Release || m.Index != rec.Index || m.App != l.App {
		return rec, out, refusedRelease(rec, fmt.Errorf("its manifest names release %s of %s with index %.12s, not what the record says", m.ID, m.App, m.Index))
	}
	if err := checkShipManifest(l, m); err != nil {
		return rec, out, err
	}
	done, err := unpacked(l, m)
	if err != nil {
		return rec, out, err
	}
	if done {
		out.Already = true
	} else {
		if _, err := uploadedIndex(l, m); err != nil {
			// Not from an earlier, cut fetch: from the store.
			_, b, err := st.Index(ctx, m.Index)
			if err != nil {
				return rec, out, refusedRelease(rec, err)
			}
			if err := keepIndex(l, m, b); err != nil {
				return rec, out, err
			}
		}
		out.Received, err = receiveRelease(l, m, func(x *release.Index, hs *store) (hostproto.Received, error) {
			return fetchObjects(ctx, st, rec, x, hs)
		})
		if err != nil {
			return rec, out, err
		}
	}
	if fromBucket && rec.Seq > storeSeen(l) {
		if err := writeFileAtomic(l.storeSeenFile(), []byte(strconv.FormatUint(rec.Seq, 10)+"\n"), 0o644); err != nil {
			return rec, out, err
		}
	}
	return rec, out, nil
}

// verifyRecord checks raw's signature with key and that it is a record
// of this app and destination.
func verifyRecord(l Layout, dest string, key ed25519.PublicKey, raw []byte, where string) (*rstore.Signed, error) {
	rec, err := rstore.Verify(key, raw)
	var wk *rstore.WrongKeyError
	if errors.As(err, &wk) {
		return nil, usererr.Wrap(err, "refused a record of the store %s", where).
			WithHint("only records signed with the key whose public half is store.public_key in hoist.yml are trusted; sign with that key (hoist store key), or run hoist setup if hoist.yml names another")
	}
	if err != nil {
		return nil, usererr.Wrap(err, "refused a record of the store %s", where)
	}
	if rec.App != l.App || rec.Destination != dest {
		return nil, usererr.New("refused a record of the store %s: it is for %s, and this host serves %s", where,
			destinationApp(rec.App, rec.Destination), destinationApp(l.App, dest))
	}
	return rec, nil
}

func destinationApp(app, dest string) string {
	if dest == "" {
		return app
	}
	return app + " (destination " + dest + ")"
}

// refusedRelease says that the release a record names cannot be used.
func refusedRelease(rec *rstore.Signed, err error) error {
	what := "is incomplete or damaged"
	switch {
	case errors.Is(err, rstore.ErrMissing):
		what = "is incomplete"
	case errors.Is(err, rstore.ErrDamaged):
		what = "is damaged"
	case usererr.Is(err):
		return err // the store itself: unreachable, no bucket
	}
	return usererr.Wrap(err, "refused release %s: what the store holds of it %s", rec.Release, what).
		WithHint("nothing was changed on this host; deploy it again (hoist deploy --full puts every object again)")
}

// storeSeen is the highest sequence number read from the bucket.
func storeSeen(l Layout) uint64 {
	b, err := os.ReadFile(l.storeSeenFile())
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// fetchObjects fetches the objects of x that hs lacks into its pack,
// several at a time, each checked by its sha256 before it is kept.
func fetchObjects(ctx context.Context, st *rstore.Store, rec *rstore.Signed, x *release.Index, hs *store) (hostproto.Received, error) {
	var got hostproto.Received
	need := needOf(x, hs)
	missing := need.MissingObjects(x.Objects())
	if len(missing) == 0 {
		return got, nil
	}
	paths := map[string]string{} // object → a file it is part of, for messages
	for _, e := range x.Entries {
		if e.Type != release.TypeFile {
			continue
		}
		paths[e.Sum] = e.Path
		for _, c := range e.Chunks {
			paths[c.Sum] = e.Path
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		o    release.Object
		data []byte
		err  error
	}
	jobs := make(chan release.Object)
	results := make(chan fetched)
	var wg sync.WaitGroup
	for range min(storeFetchParallel, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range jobs {
				data, err := st.Object(ctx, o.Sum, o.Size)
				select {
				case results <- fetched{o, data, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, o := range missing {
			select {
			case jobs <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	var firstErr error
	for f := range results {
		if firstErr != nil {
			continue
		}
		if f.err != nil {
			firstErr = refusedRelease(rec, fmt.Errorf("object %.12s (of %s): %w", f.o.Sum, paths[f.o.Sum], f.err))
			cancel()
			continue
		}
		if err := hs.pack.put(f.o.Sum, f.data); err != nil {
			firstErr = err
			cancel()
			continue
		}
		got.Objects++
		got.Bytes += int64(len(f.data))
	}
	if firstErr != nil {
		return got, fmt.Errorf("fetch %s after %d objects (%s): %w", rec.Release, got.Objects, bytesize.String(got.Bytes), firstErr)
	}
	return got, ctx.Err()
}
