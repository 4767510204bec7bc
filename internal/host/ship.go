package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

// Shipping a release to a host sends only what it lacks. The client
// sends the release's index (as a delta from the index of a release it
// expects the host to hold); the host answers with the objects it needs,
// counting the files of its kept releases and the objects of an earlier,
// cut transfer; the client (or a relay host) sends those; the host
// assembles the release from them and from hard links to the files it
// already had, checks every file, and renames it into place.

// maxIndexSize bounds an index a host accepts.
const maxIndexSize = MaxDeltaFile

// checkShipManifest is checkManifest, and a release that names its index.
func checkShipManifest(l Layout, m *release.Manifest) error {
	if err := checkManifest(l, m); err != nil {
		return err
	}
	if m.Index == "" {
		return fmt.Errorf("release %s has no index: it was packed by an older hoist; deploy with --rebuild", m.ID)
	}
	return nil
}

// unpacked reports whether release m is in place; the same id with other
// contents is an error.
func unpacked(l Layout, m *release.Manifest) (bool, error) {
	have, err := l.Manifest(m.ID)
	if err != nil {
		return false, nil
	}
	if have.SHA256 != m.SHA256 {
		// Two builds of one commit in the same second (two machines
		// deploying at once) share an id but not their bytes.
		return false, fmt.Errorf("release %s is already on this host with other contents (sha256 %.12s, not %.12s): it was built twice; deploy with --rebuild to give this build an id of its own", m.ID, have.SHA256, m.SHA256)
	}
	return true, nil
}

// uploadedIndex reads the index an earlier call stored for m.
func uploadedIndex(l Layout, m *release.Manifest) (*release.Index, error) {
	b, err := os.ReadFile(l.indexUpload(m.ID))
	if err != nil {
		return nil, err
	}
	if release.SumBytes(b) != m.Index {
		return nil, fmt.Errorf("stored index of %s does not match its manifest", m.ID)
	}
	return release.ParseIndex(b)
}

// shipIndex takes release m's index, compressed as a delta from the
// index of a kept release whose index sum is base ("" for none), keeps
// it, and says what the host needs. A host that has the release, or its
// index from an earlier transfer, ignores what it was sent; one that
// does not hold base asks for the index again (Rebase).
func shipIndex(l Layout, m *release.Manifest, base string, r io.Reader) (hostproto.ShipState, error) {
	if err := checkShipManifest(l, m); err != nil {
		return hostproto.ShipState{}, err
	}
	if done, err := unpacked(l, m); done || err != nil {
		return hostproto.ShipState{Unpacked: done}, err
	}
	st, err := openStore(l)
	if err != nil {
		return hostproto.ShipState{}, err
	}
	x, err := uploadedIndex(l, m)
	resumed := err == nil
	if !resumed {
		var dict []byte
		if base != "" {
			if dict, err = baseIndex(l, base); err != nil {
				return hostproto.ShipState{Rebase: true, Bases: st.indexes}, nil
			}
		}
		if x, err = receiveIndex(l, m, dict, r); err != nil {
			return hostproto.ShipState{}, err
		}
	}
	if st.pack, err = openPack(l.packFile(m.ID)); err != nil {
		return hostproto.ShipState{}, err
	}
	defer st.pack.close()
	n := needOf(x, st)
	return hostproto.ShipState{Need: &n, Resumed: resumed}, nil
}

// receiveIndex reads release m's index, a delta from dict, checks it
// against the manifest and keeps it in uploads/.
func receiveIndex(l Layout, m *release.Manifest, dict []byte, r io.Reader) (*release.Index, error) {
	delta, err := io.ReadAll(io.LimitReader(r, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("receive index: %w", err)
	}
	b, err := applyDelta(dict, delta, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("receive index: %w", err)
	}
	if release.SumBytes(b) != m.Index {
		return nil, fmt.Errorf("the index of %s arrived corrupted: its sha256 is not the manifest's", m.ID)
	}
	x, err := release.ParseIndex(b)
	if err != nil {
		return nil, err
	}
	if err := keepIndex(l, m, b); err != nil {
		return nil, err
	}
	return x, nil
}

// keepIndex keeps release m's index, its canonical bytes b (checked
// against the manifest), in uploads/ for the transfer that follows.
func keepIndex(l Layout, m *release.Manifest, b []byte) error {
	if release.SumBytes(b) != m.Index {
		return fmt.Errorf("the index of %s does not match its manifest", m.ID)
	}
	if err := os.MkdirAll(l.Uploads(), 0o700); err != nil {
		return fmt.Errorf("receive index: %w", err)
	}
	return writeFileAtomic(l.indexUpload(m.ID), b, 0o600)
}

// baseIndex is the canonical index of the kept release whose index sum
// is sum.
func baseIndex(l Layout, sum string) ([]byte, error) {
	ids, err := l.ReleaseIDs()
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		if x, s, err := l.releaseIndex(ids[i]); err == nil && s == sum {
			return x.Marshal(), nil
		}
	}
	return nil, fmt.Errorf("no kept release has index %.12s", sum)
}

// needOf lists what st lacks of x.
func needOf(x *release.Index, st *store) hostproto.Need {
	var n hostproto.Need
	objs := x.Objects()
	for i, o := range objs {
		if st.has(o.Sum) {
			n.Have += o.Size
			continue
		}
		n.Bytes += o.Size
		if k := len(n.Missing); k > 0 && n.Missing[k-1].To == i {
			n.Missing[k-1].To++
		} else {
			n.Missing = append(n.Missing, hostproto.Range{From: i, To: i + 1})
		}
	}
	for _, e := range x.Entries {
		if e.Type != release.TypeFile || len(e.Chunks) == 0 || e.Size > MaxDeltaFile || st.has(e.Sum) {
			continue
		}
		old, ok := st.latest[e.Path]
		if ok && old.Type == release.TypeFile && old.Sum != e.Sum && old.Size <= MaxDeltaFile && missingAny(e, st) {
			n.Deltas = append(n.Deltas, hostproto.Delta{File: e.Sum, Base: old.Sum})
		}
	}
	return n
}

func missingAny(e release.Entry, st *store) bool {
	for _, c := range e.Chunks {
		if !st.has(c.Sum) {
			return true
		}
	}
	return false
}

// receiveTransfer reads a transfer of release m's objects from r into
// the host's pack, then assembles the release. A cut transfer keeps what
// arrived whole, for the next attempt.
func receiveTransfer(l Layout, m *release.Manifest, r io.Reader) (hostproto.Received, error) {
	return receiveRelease(l, m, func(x *release.Index, st *store) (hostproto.Received, error) {
		got, err := receiveInto(x, st, r)
		if errors.Is(err, errCut) {
			return got, fmt.Errorf("receive %s: the connection ended after %d objects (%s); run the deploy again to resume", m.ID, got.Objects, bytesize.String(got.Bytes))
		}
		if err != nil {
			return got, fmt.Errorf("receive %s: %w", m.ID, err)
		}
		return got, nil
	})
}

// receiveRelease fills the host's pack for release m, whose index it
// holds, with fill, then assembles the release.
func receiveRelease(l Layout, m *release.Manifest, fill func(*release.Index, *store) (hostproto.Received, error)) (hostproto.Received, error) {
	if err := checkShipManifest(l, m); err != nil {
		return hostproto.Received{}, err
	}
	if done, err := unpacked(l, m); done || err != nil {
		return hostproto.Received{}, err
	}
	x, err := uploadedIndex(l, m)
	if err != nil {
		return hostproto.Received{}, fmt.Errorf("receive %s: the host has no index of it yet: %w", m.ID, err)
	}
	st, err := openStore(l)
	if err != nil {
		return hostproto.Received{}, err
	}
	if st.pack, err = openPack(l.packFile(m.ID)); err != nil {
		return hostproto.Received{}, err
	}
	got, err := fill(x, st)
	if cerr := st.pack.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return got, err
	}
	a, err := assembleRelease(l, m, x)
	got.Files, got.Linked = a.Files, a.Linked
	return got, err
}

// receiveInto stores the transfer's records in st's pack, checking each.
func receiveInto(x *release.Index, st *store, r io.Reader) (hostproto.Received, error) {
	var got hostproto.Received
	wanted := map[string]bool{}
	for _, o := range x.Objects() {
		wanted[o.Sum] = true
	}
	files := map[string]release.Entry{}
	for _, e := range x.Entries {
		if e.Type == release.TypeFile {
			files[e.Sum] = e
		}
	}
	err := readRecords(r, func(rec record) error {
		switch rec.kind {
		case recObject:
			if !wanted[rec.sum] {
				return fmt.Errorf("object %.12s is not part of the release", rec.sum)
			}
			if release.SumBytes(rec.data) != rec.sum {
				return fmt.Errorf("object %.12s arrived corrupted", rec.sum)
			}
			got.Objects++
			got.Bytes += int64(len(rec.data))
			return st.pack.put(rec.sum, rec.data)
		case recDelta:
			e, ok := files[rec.sum]
			if !ok {
				return fmt.Errorf("delta for %.12s, which is not a file of the release", rec.sum)
			}
			if err := storeDelta(st, e, rec); err != nil {
				return err
			}
			got.Deltas++
			got.Bytes += e.Size
		}
		return nil
	})
	return got, err
}

// storeDelta applies a delta to its base, checks the file it makes and
// keeps it as the file's objects.
func storeDelta(st *store, e release.Entry, rec record) error {
	base, err := st.readFile(rec.base, MaxDeltaFile)
	if err != nil {
		return err
	}
	data, err := applyDelta(base, rec.data, e.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if int64(len(data)) != e.Size || release.SumBytes(data) != e.Sum {
		return fmt.Errorf("%s: the delta did not make the file the index names", e.Path)
	}
	objects := e.Chunks
	if len(objects) == 0 {
		objects = []release.Chunk{{Sum: e.Sum, Size: e.Size}}
	}
	var off int64
	for _, c := range objects {
		piece := data[off : off+c.Size]
		off += c.Size
		if release.SumBytes(piece) != c.Sum {
			return fmt.Errorf("%s: a chunk the delta made does not match the index", e.Path)
		}
		if err := st.pack.put(c.Sum, piece); err != nil {
			return err
		}
	}
	return nil
}

// assembleRelease makes releases/ID from the host's content once
// nothing is missing: in a temporary directory, every file checked, the
// manifest and index written, then one rename.
func assembleRelease(l Layout, m *release.Manifest, x *release.Index) (release.Assembled, error) {
	var a release.Assembled
	st, err := openStore(l)
	if err != nil {
		return a, err
	}
	if st.pack, err = openPack(l.packFile(m.ID)); err != nil {
		return a, err
	}
	defer st.pack.close()
	if n := needOf(x, st); len(n.Missing) > 0 {
		return a, fmt.Errorf("receive %s: the transfer ended with %d objects (%s) still missing", m.ID, len(n.MissingObjects(x.Objects())), bytesize.String(n.Bytes))
	}
	if err := os.MkdirAll(l.Releases(), 0o750); err != nil {
		return a, fmt.Errorf("assemble %s: %w", m.ID, err)
	}
	tmp := filepath.Join(l.Releases(), ".tmp-"+m.ID+"-"+randomSuffix())
	defer os.RemoveAll(tmp) // gone after the rename; cleans up on failure
	if a, err = release.Assemble(x, tmp, st); err != nil {
		return a, fmt.Errorf("assemble %s: %w", m.ID, err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, release.IndexName), x.Marshal(), 0o644); err != nil {
		return a, err
	}
	if err := writeFileAtomic(filepath.Join(tmp, release.ManifestName), m.Marshal(), 0o644); err != nil {
		return a, err
	}
	if err := os.Rename(tmp, l.Release(m.ID)); err != nil {
		return a, fmt.Errorf("assemble %s: %w", m.ID, err)
	}
	if err := syncDir(l.Releases()); err != nil {
		return a, err
	}
	clearUploads(l)
	return a, nil
}

// clearUploads removes what transfers left: nothing is being received
// while the deploy lock is held by the one that just finished.
func clearUploads(l Layout) {
	entries, _ := os.ReadDir(l.Uploads())
	for _, e := range entries {
		os.RemoveAll(filepath.Join(l.Uploads(), e.Name()))
	}
}
