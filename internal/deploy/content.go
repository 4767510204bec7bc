package deploy

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/release"
)

// indexPath is where the artifact's file index is kept, beside its
// payload.
func (a *Artifact) indexPath() string { return strings.TrimSuffix(a.Path, ".tar.zst") + ".index.json" }

// Index reads the artifact's file index, checked against its manifest.
func (a *Artifact) Index() (*release.Index, error) {
	a.indexOnce.Do(func() {
		b, err := os.ReadFile(a.indexPath())
		if err != nil {
			a.indexErr = fmt.Errorf("index of %s: %w", a.Manifest.ID, err)
			return
		}
		if release.SumBytes(b) != a.Manifest.Index {
			a.indexErr = fmt.Errorf("index of %s does not match its manifest", a.Manifest.ID)
			return
		}
		a.index, a.indexErr = release.ParseIndex(b)
	})
	return a.index, a.indexErr
}

// eachFile streams the artifact's payload and calls fn for each regular
// file that want selects, with its entry and content.
func (a *Artifact) eachFile(x *release.Index, want func(release.Entry) bool, fn func(release.Entry, io.Reader) error) error {
	entries := map[string]release.Entry{}
	for _, e := range x.Entries {
		if e.Type == release.TypeFile && want(e) {
			entries[e.Path] = e
		}
	}
	if len(entries) == 0 {
		return nil
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", a.Manifest.ID, err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", a.Manifest.ID, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for len(entries) > 0 {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", a.Manifest.ID, err)
		}
		e, ok := entries[strings.TrimSuffix(hdr.Name, "/")]
		if !ok || hdr.Typeflag != tar.TypeReg {
			continue
		}
		delete(entries, e.Path)
		if err := fn(e, tr); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		return fmt.Errorf("read %s: %d files of its index are not in its payload", a.Manifest.ID, len(entries))
	}
	return nil
}

// localArtifacts are the releases of app packed on this machine: where
// the index a host holds, and the files deltas start from, are found.
func localArtifacts(workDir, app string) []*Artifact {
	paths, _ := filepath.Glob(filepath.Join(workDir, "releases", app, "*.index.json"))
	var out []*Artifact
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		tarPath := strings.TrimSuffix(p, ".index.json") + ".tar.zst"
		if _, err := os.Stat(tarPath); err != nil {
			continue
		}
		art := &Artifact{Manifest: &release.Manifest{ID: filepath.Base(tarPath), Index: release.SumBytes(b)}, Path: tarPath}
		out = append(out, art)
	}
	return out
}

// baseIndex finds, of the index sums a host holds (newest first), the
// first this machine also has, and its canonical bytes.
func baseIndex(locals []*Artifact, bases []string) (string, []byte) {
	for _, sum := range bases {
		for _, a := range locals {
			if a.Manifest.Index == sum {
				if x, err := a.Index(); err == nil {
					return sum, x.Marshal()
				}
			}
		}
	}
	return "", nil
}

// baseFiles reads, from the releases packed on this machine, the files
// with the sums wanted: the bases of deltas. A base not found here is
// left out, and its file travels as objects.
func baseFiles(locals []*Artifact, wanted map[string]bool) map[string][]byte {
	found := map[string][]byte{}
	for _, a := range locals {
		x, err := a.Index()
		if err != nil {
			continue
		}
		_ = a.eachFile(x, func(e release.Entry) bool { return wanted[e.Sum] && found[e.Sum] == nil && e.Size <= host.MaxDeltaFile },
			func(e release.Entry, r io.Reader) error {
				if b, err := io.ReadAll(r); err == nil && release.SumBytes(b) == e.Sum {
					found[e.Sum] = b
				}
				return nil
			})
		if len(found) == len(wanted) {
			break
		}
	}
	return found
}

// shipment is one release on its way: what hosts are sent is worked
// out per host from what they hold.
type shipment struct {
	art    *Artifact
	x      *release.Index
	locals []*Artifact
	// full ignores what hosts hold: every object is sent (--full).
	full bool

	basesMu sync.Mutex
	bases   map[string][]byte // delta bases read so far, by sum
}

func newShipment(art *Artifact, workDir string, full bool) (*shipment, error) {
	x, err := art.Index()
	if err != nil {
		return nil, err
	}
	s := &shipment{art: art, x: x, full: full, bases: map[string][]byte{}}
	if !full {
		s.locals = localArtifacts(workDir, art.Manifest.App)
	}
	return s, nil
}

// base returns the delta bases of need this machine has.
func (s *shipment) base(need host.Need) map[string][]byte {
	s.basesMu.Lock()
	defer s.basesMu.Unlock()
	missing := map[string]bool{}
	for _, d := range need.Deltas {
		if _, ok := s.bases[d.Base]; !ok {
			missing[d.Base] = true
		}
	}
	if len(missing) > 0 {
		for sum, b := range baseFiles(s.locals, missing) {
			s.bases[sum] = b
		}
		for sum := range missing {
			if _, ok := s.bases[sum]; !ok {
				s.bases[sum] = nil // looked for, not here
			}
		}
	}
	out := map[string][]byte{}
	for _, d := range need.Deltas {
		if b := s.bases[d.Base]; b != nil {
			out[d.Base] = b
		}
	}
	return out
}

// transferStats is what a transfer wrote.
type transferStats struct {
	Objects, Deltas int
}

// writeTransfer writes the objects need names to w, large files as
// deltas where this machine has the base and the delta is smaller.
// progress is told of each piece of content as it goes.
func (s *shipment) writeTransfer(w *host.RecordWriter, need host.Need, progress func(n int64)) (transferStats, error) {
	var st transferStats
	missing := map[string]bool{}
	for _, o := range need.MissingObjects(s.x.Objects()) {
		missing[o.Sum] = true
	}
	deltaOf := map[string]string{} // file sum → base sum
	for _, d := range need.Deltas {
		deltaOf[d.File] = d.Base
	}
	bases := s.base(need)
	wants := func(e release.Entry) bool {
		if len(e.Chunks) == 0 {
			return missing[e.Sum]
		}
		for _, c := range e.Chunks {
			if missing[c.Sum] {
				return true
			}
		}
		return false
	}
	err := s.art.eachFile(s.x, wants, func(e release.Entry, r io.Reader) error {
		if base := bases[deltaOf[e.Sum]]; base != nil {
			sent, err := s.tryDelta(w, e, deltaOf[e.Sum], base, r, missing)
			if err != nil || sent {
				if sent {
					st.Deltas++
					progress(e.Size)
				}
				return err
			}
			return nil
		}
		n, err := writeObjects(w, e, r, missing, progress)
		st.Objects += n
		return err
	})
	if err != nil {
		return st, err
	}
	return st, w.End()
}

// tryDelta sends e as a delta from base when that is smaller than its
// missing objects compressed; otherwise it sends the objects.
func (s *shipment) tryDelta(w *host.RecordWriter, e release.Entry, baseSum string, base []byte, r io.Reader, missing map[string]bool) (bool, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return false, err
	}
	delta, err := host.EncodeDelta(base, data)
	if err != nil {
		return false, err
	}
	var plain []byte
	var off int64
	for _, c := range e.Chunks {
		if missing[c.Sum] {
			plain = append(plain, data[off:off+c.Size]...)
		}
		off += c.Size
	}
	if len(delta) < compressedSize(plain) {
		for _, c := range e.Chunks {
			delete(missing, c.Sum)
		}
		return true, w.Delta(e.Sum, baseSum, delta)
	}
	_, err = writeObjects(w, e, bytes.NewReader(data), missing, func(int64) {})
	return false, err
}

// compressedSize is how large b is compressed as the transfer would.
func compressedSize(b []byte) int {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	return len(enc.EncodeAll(b, nil))
}

// writeObjects writes the missing objects of file e, read from r.
func writeObjects(w *host.RecordWriter, e release.Entry, r io.Reader, missing map[string]bool, progress func(int64)) (int, error) {
	objects := e.Chunks
	if len(objects) == 0 {
		objects = []release.Chunk{{Sum: e.Sum, Size: e.Size}}
	}
	n := 0
	buf := make([]byte, release.MaxObjectSize)
	for _, c := range objects {
		data := buf[:c.Size]
		if _, err := io.ReadFull(r, data); err != nil {
			return n, fmt.Errorf("read %s: %w", e.Path, err)
		}
		if !missing[c.Sum] {
			continue
		}
		// An object that is in two files, or twice in one, goes once.
		delete(missing, c.Sum)
		if err := w.Object(c.Sum, data); err != nil {
			return n, err
		}
		n++
		progress(c.Size)
	}
	return n, nil
}
