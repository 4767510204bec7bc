package host

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/release"
)

// store is the content a host holds for an app: the files of its kept
// releases, found by checksum through their indexes, and the objects of
// the release being received, in its pack. It is what a release is
// assembled from, and what the host need not be sent again.
type store struct {
	files  map[string][]fileLoc // whole-file sum → files with that content
	chunks map[string]chunkLoc  // chunk sum → where in a kept file
	pack   *pack                // the release being received; nil when none
	// indexes are the kept releases' index sums, newest first.
	indexes []string
	// latest maps a path to its entry in the current release (else the
	// newest): what a changed large file may travel as a delta against.
	latest map[string]release.Entry
}

type fileLoc struct {
	path string
	mode uint32
}

type chunkLoc struct {
	path      string
	off, size int64
}

// openStore reads the indexes of the app's kept releases (newest first).
func openStore(l Layout) (*store, error) {
	s := &store{files: map[string][]fileLoc{}, chunks: map[string]chunkLoc{}, latest: map[string]release.Entry{}}
	ids, err := l.ReleaseIDs()
	if err != nil {
		return nil, fmt.Errorf("read releases: %w", err)
	}
	// Deltas are against the release that serves, else the newest.
	base := l.CurrentID()
	if base == "" && len(ids) > 0 {
		base = ids[len(ids)-1]
	}
	for i := len(ids) - 1; i >= 0; i-- {
		x, sum, err := l.releaseIndex(ids[i])
		if err != nil {
			continue // a release hoist cannot read is no base; it is not ours to fix here
		}
		if ids[i] == base {
			for _, e := range x.Entries {
				s.latest[e.Path] = e
			}
		}
		s.indexes = append(s.indexes, sum)
		s.add(l.Release(ids[i]), x)
	}
	return s, nil
}

func (s *store) add(dir string, x *release.Index) {
	for _, e := range x.Entries {
		if e.Type != release.TypeFile {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		s.files[e.Sum] = append(s.files[e.Sum], fileLoc{path: p, mode: e.Mode})
		var off int64
		for _, c := range e.Chunks {
			if _, ok := s.chunks[c.Sum]; !ok {
				s.chunks[c.Sum] = chunkLoc{path: p, off: off, size: c.Size}
			}
			off += c.Size
		}
	}
}

// has reports whether the host holds object sum.
func (s *store) has(sum string) bool {
	if _, ok := s.chunks[sum]; ok {
		return true
	}
	if len(s.files[sum]) > 0 {
		return true
	}
	return s.pack != nil && s.pack.has(sum)
}

// FileWith is release.Source's: a kept file to hard-link.
func (s *store) FileWith(sum string, mode uint32) string {
	for _, f := range s.files[sum] {
		if f.mode == mode {
			return f.path
		}
	}
	return ""
}

// Object is release.Source's.
func (s *store) Object(sum string) (io.ReadCloser, error) {
	if s.pack != nil {
		if r, ok := s.pack.open(sum); ok {
			return r, nil
		}
	}
	if fs := s.files[sum]; len(fs) > 0 {
		return os.Open(fs[0].path)
	}
	if c, ok := s.chunks[sum]; ok {
		f, err := os.Open(c.path)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, c.off, c.size), f}, nil
	}
	return nil, fmt.Errorf("object %.12s is not on this host", sum)
}

// readFile reads a kept file by its whole sum, up to limit bytes, and
// checks it: the base a delta is applied to.
func (s *store) readFile(sum string, limit int64) ([]byte, error) {
	for _, f := range s.files[sum] {
		fi, err := os.Stat(f.path)
		if err != nil || fi.Size() > limit {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err == nil && release.SumBytes(b) == sum {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no file with sha256 %.12s on this host to apply a delta to", sum)
}

// releaseIndex reads the index of a kept release and its sum; a release
// from a hoist that wrote none is indexed from its files.
func (l Layout) releaseIndex(id string) (*release.Index, string, error) {
	b, err := os.ReadFile(filepath.Join(l.Release(id), release.IndexName))
	if errors.Is(err, os.ErrNotExist) {
		x, err := release.IndexDir(l.Release(id))
		if err != nil {
			return nil, "", err
		}
		return x, x.Sum(), nil
	}
	if err != nil {
		return nil, "", err
	}
	x, err := release.ParseIndex(b)
	if err != nil {
		return nil, "", fmt.Errorf("release %s: %w", id, err)
	}
	return x, release.SumBytes(b), nil
}

// A pack holds the objects of a release being received, one record
// after another: sha256 (32 bytes), size (4 bytes, big-endian), data.
// A cut transfer leaves the records it completed; the next attempt reads
// them back, checks each, and sends only what is missing.
type pack struct {
	f      *os.File
	at     map[string]packLoc
	end    int64
	synced int64
}

type packLoc struct{ off, size int64 }

const packHeader = sha256.Size + 4

// syncEvery bounds what a power cut may cost a transfer to resume.
const syncEvery = 8 << 20

// openPack opens the pack at p, keeping the whole records it holds and
// cutting off a torn or corrupt tail.
func openPack(p string) (*pack, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open pack: %w", err)
	}
	k := &pack{f: f, at: map[string]packLoc{}}
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, packHeader)
	buf := make([]byte, release.MaxObjectSize)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			break
		}
		size := int64(binary.BigEndian.Uint32(hdr[sha256.Size:]))
		if size > release.MaxObjectSize {
			break
		}
		data := buf[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			break
		}
		sum := hex.EncodeToString(hdr[:sha256.Size])
		if release.SumBytes(data) != sum {
			break
		}
		k.at[sum] = packLoc{off: k.end + packHeader, size: size}
		k.end += packHeader + size
	}
	if err := f.Truncate(k.end); err != nil {
		f.Close()
		return nil, fmt.Errorf("open pack: %w", err)
	}
	if _, err := f.Seek(k.end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open pack: %w", err)
	}
	k.synced = k.end
	return k, nil
}

func (k *pack) has(sum string) bool { _, ok := k.at[sum]; return ok }

func (k *pack) open(sum string) (io.ReadCloser, bool) {
	loc, ok := k.at[sum]
	if !ok {
		return nil, false
	}
	return io.NopCloser(io.NewSectionReader(k.f, loc.off, loc.size)), true
}

// put appends an object whose sum the caller has checked.
func (k *pack) put(sum string, data []byte) error {
	if k.has(sum) {
		return nil
	}
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size {
		return fmt.Errorf("pack: bad sum %q", sum)
	}
	rec := make([]byte, 0, packHeader+len(data))
	rec = append(rec, raw...)
	rec = binary.BigEndian.AppendUint32(rec, uint32(len(data)))
	rec = append(rec, data...)
	if _, err := k.f.Write(rec); err != nil {
		return fmt.Errorf("store object: %w", err)
	}
	k.at[sum] = packLoc{off: k.end + packHeader, size: int64(len(data))}
	k.end += int64(len(rec))
	if k.end-k.synced >= syncEvery {
		return k.sync()
	}
	return nil
}

func (k *pack) sync() error {
	if err := k.f.Sync(); err != nil {
		return fmt.Errorf("store object: %w", err)
	}
	k.synced = k.end
	return nil
}

func (k *pack) close() error {
	err := k.sync()
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	return err
}
