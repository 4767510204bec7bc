package deploy

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

// baseIndex finds, of the index sums a host holds (newest first), the
// first this machine also has, and its canonical bytes.
func baseIndex(locals []*build.Artifact, bases []string) (string, []byte) {
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
func baseFiles(workDir string, locals []*build.Artifact, wanted map[string]bool) map[string][]byte {
	found := map[string][]byte{}
	for sum := range wanted {
		if b := build.KeptFile(workDir, sum); b != nil {
			found[sum] = b
		}
	}
	for _, a := range locals {
		if len(found) == len(wanted) {
			break
		}
		x, err := a.Index()
		if err != nil {
			continue
		}
		_ = a.EachFile(x, func(e release.Entry) bool { return wanted[e.Sum] && found[e.Sum] == nil && e.Size <= host.MaxDeltaFile },
			func(e release.Entry, r io.Reader) error {
				if b, err := io.ReadAll(r); err == nil && release.SumBytes(b) == e.Sum {
					found[e.Sum] = b
				}
				return nil
			})
	}
	return found
}

// deltaCandidate says whether a file of the index may travel as a delta.
func deltaCandidate(e release.Entry) bool {
	return e.Type == release.TypeFile && len(e.Chunks) > 0 && e.Size <= host.MaxDeltaFile
}

// shipment is one release on its way: what hosts are sent is worked
// out per host from what they hold.
type shipment struct {
	art     *build.Artifact
	x       *release.Index
	workDir string
	locals  []*build.Artifact
	// full ignores what hosts hold: every object is sent (--full).
	full bool

	mu      sync.Mutex
	indexes map[string][]byte     // the index as a delta from each base sent so far
	deltas  map[[2]string]*future // file and base sums → the delta between them
}

// future is a delta being made, or made.
type future struct {
	done  chan struct{}
	delta []byte // nil when it cannot be made here
	// data is the file's content, kept so that sending it does not read
	// the payload again.
	data []byte
}

func newShipment(art *build.Artifact, workDir string, full bool) (*shipment, error) {
	x, err := art.Index()
	if err != nil {
		return nil, err
	}
	s := &shipment{art: art, x: x, workDir: workDir, full: full, indexes: map[string][]byte{}, deltas: map[[2]string]*future{}}
	if !full {
		s.locals = build.Packed(workDir, art.Manifest.App)
		if _, base := s.guess(); base != nil {
			s.startDeltas(base)
		}
	}
	return s, nil
}

// guess is the release hosts most likely hold: the newest other release
// packed here. The index is sent as a delta from it, and the deltas of
// the large files that changed since are made while the hosts answer.
func (s *shipment) guess() (string, *release.Index) {
	for i := len(s.locals) - 1; i >= 0; i-- {
		a := s.locals[i]
		if a.Manifest.Index == s.art.Manifest.Index {
			continue
		}
		if x, err := a.Index(); err == nil {
			return a.Manifest.Index, x
		}
	}
	return "", nil
}

// indexDelta is the index as a delta from the index whose canonical
// bytes are dict, made once for all hosts.
func (s *shipment) indexDelta(base string, dict []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.indexes[base]; ok {
		return d, nil
	}
	d, err := host.EncodeDelta(dict, s.x.Marshal())
	if err == nil {
		s.indexes[base] = d
	}
	return d, err
}

// startDeltas makes, in the background, the deltas of the large files
// that changed since base: the ones hosts holding base will ask for.
func (s *shipment) startDeltas(base *release.Index) {
	old := map[string]release.Entry{}
	for _, e := range base.Entries {
		old[e.Path] = e
	}
	pairs := map[string]string{} // new file sum → old file sum
	wanted := map[string]bool{}
	var mine []*future
	s.mu.Lock()
	for _, e := range s.x.Entries {
		o, ok := old[e.Path]
		if !deltaCandidate(e) || !ok || o.Type != release.TypeFile || o.Sum == e.Sum || o.Size > host.MaxDeltaFile {
			continue
		}
		pairs[e.Sum], wanted[o.Sum] = o.Sum, true
		f := &future{done: make(chan struct{})}
		s.deltas[[2]string{e.Sum, o.Sum}] = f
		mine = append(mine, f)
	}
	s.mu.Unlock()
	if len(pairs) == 0 {
		return
	}
	go func() {
		bases := baseFiles(s.workDir, s.locals, wanted)
		finish := func(e release.Entry, data []byte) {
			f := s.future(e.Sum, pairs[e.Sum])
			if base := bases[pairs[e.Sum]]; base != nil && data != nil {
				f.delta, _ = host.EncodeDelta(base, data)
				f.data = data
			}
			close(f.done)
		}
		unkept := map[string]bool{}
		for _, e := range s.x.Entries {
			if pairs[e.Sum] == "" {
				continue
			}
			if data := build.KeptFile(s.workDir, e.Sum); data != nil {
				finish(e, data)
			} else {
				unkept[e.Sum] = true
			}
		}
		_ = s.art.EachFile(s.x, func(e release.Entry) bool { return unkept[e.Sum] }, func(e release.Entry, r io.Reader) error {
			data, _ := io.ReadAll(r)
			finish(e, data)
			return nil
		})
		for _, f := range mine {
			select {
			case <-f.done:
			default:
				close(f.done) // a file the payload did not hold: no delta
			}
		}
	}()
}

func (s *shipment) future(file, base string) *future {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deltas[[2]string{file, base}]
}

// delta is the delta that makes file e (content data) from base, made
// in the background or now; nil when this machine lacks the base.
func (s *shipment) delta(e release.Entry, baseSum string, data []byte) []byte {
	f := s.future(e.Sum, baseSum)
	if f == nil {
		s.mu.Lock()
		f = &future{done: make(chan struct{})}
		s.deltas[[2]string{e.Sum, baseSum}] = f
		s.mu.Unlock()
		if base := baseFiles(s.workDir, s.locals, map[string]bool{baseSum: true})[baseSum]; base != nil {
			f.delta, _ = host.EncodeDelta(base, data)
		}
		close(f.done)
	}
	<-f.done
	return f.delta
}

// transferStats is what a transfer wrote.
type transferStats struct {
	Objects, Deltas int
}

// writeTransfer writes the objects need names to w, large files as
// deltas where this machine has the base and the delta is smaller.
// progress is told of each piece of content as it goes.
func (s *shipment) writeTransfer(w *host.RecordWriter, need hostproto.Need, progress func(n int64)) (transferStats, error) {
	var st transferStats
	missing := map[string]bool{}
	for _, o := range need.MissingObjects(s.x.Objects()) {
		missing[o.Sum] = true
	}
	deltaOf := map[string]string{} // file sum → base sum
	for _, d := range need.Deltas {
		deltaOf[d.File] = d.Base
	}
	wants := holdsAny(missing)
	// Files made ready in the background go first, from memory; the
	// payload is read only for the others, if any.
	for _, e := range s.x.Entries {
		f := s.future(e.Sum, deltaOf[e.Sum])
		if e.Type != release.TypeFile || f == nil || !wants(e) {
			continue
		}
		<-f.done
		if f.data == nil {
			continue
		}
		sent, n, err := s.tryDelta(w, e, deltaOf[e.Sum], bytes.NewReader(f.data), missing, progress)
		if sent {
			st.Deltas++
		}
		st.Objects += n
		if err != nil {
			return st, err
		}
	}
	err := s.art.EachFile(s.x, wants, func(e release.Entry, r io.Reader) error {
		if base := deltaOf[e.Sum]; base != "" && !s.full {
			sent, n, err := s.tryDelta(w, e, base, r, missing, progress)
			if sent {
				st.Deltas++
			}
			st.Objects += n
			return err
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
// missing objects compressed; otherwise it sends the objects, and says
// how many.
func (s *shipment) tryDelta(w *host.RecordWriter, e release.Entry, baseSum string, r io.Reader, missing map[string]bool, progress func(int64)) (bool, int, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return false, 0, err
	}
	var plain []byte
	var off int64
	for _, c := range e.Chunks {
		if missing[c.Sum] {
			plain = append(plain, data[off:off+c.Size]...)
		}
		off += c.Size
	}
	// A delta a tenth of the plain bytes beats them compressed without
	// compressing them to see.
	if delta := s.delta(e, baseSum, data); delta != nil && (len(delta)*10 < len(plain) || len(delta) < compressedSize(plain)) {
		for _, c := range e.Chunks {
			delete(missing, c.Sum)
		}
		progress(e.Size)
		return true, 0, w.Delta(e.Sum, baseSum, delta)
	}
	n, err := writeObjects(w, e, bytes.NewReader(data), missing, progress)
	return false, n, err
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

// holdsAny is whether a file entry's objects (its content, or its
// chunks) include one of sums, as sums is when it is asked.
func holdsAny(sums map[string]bool) func(release.Entry) bool {
	return func(e release.Entry) bool {
		if len(e.Chunks) == 0 {
			return sums[e.Sum]
		}
		for _, c := range e.Chunks {
			if sums[c.Sum] {
				return true
			}
		}
		return false
	}
}
