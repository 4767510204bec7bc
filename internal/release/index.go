package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// IndexName is the file that lists a release's content, beside the
// manifest inside each release directory on a host. A payload may not
// contain it either.
const IndexName = ".hoist-index.json"

// An Index lists every entry of a release with its content's checksum,
// large files also as content-defined chunks: what delta shipping
// compares with what a host already holds, and what a host verifies a
// release against before it uses it. Its canonical bytes (Marshal) are
// named by Manifest.Index.
type Index struct {
	Entries []Entry `json:"entries"`
}

// Entry types.
const (
	TypeDir     = "d"
	TypeFile    = "f"
	TypeSymlink = "l"
)

// Entry is one directory, file or symlink of a release.
type Entry struct {
	Path string `json:"p"` // slash-separated, relative to the release
	Type string `json:"t"`
	Mode uint32 `json:"m,omitempty"` // permission bits
	Size int64  `json:"s,omitempty"` // of a file
	Sum  string `json:"h,omitempty"` // sha256 of a file's content
	Link string `json:"l,omitempty"` // a symlink's target
	// Chunks are a large file's content-defined chunks, in order; a
	// small file is one object, its Sum.
	Chunks []Chunk `json:"c,omitempty"`
}

// Chunk is a piece of a large file.
type Chunk struct {
	Sum  string `json:"h"`
	Size int64  `json:"s"`
}

// Object is a piece of content that travels on its own: a small file or
// a chunk of a large one, named by its sha256.
type Object struct {
	Sum  string
	Size int64
}

// Limits that keep a hostile or broken index from costing a host much.
const (
	maxIndexEntries = 1 << 20
	MaxObjectSize   = maxChunk // the largest object a host accepts
)

// Objects lists the release's objects in index order, each once.
func (x *Index) Objects() []Object {
	seen := map[string]bool{}
	var out []Object
	add := func(sum string, size int64) {
		if !seen[sum] {
			seen[sum] = true
			out = append(out, Object{Sum: sum, Size: size})
		}
	}
	for _, e := range x.Entries {
		if e.Type != TypeFile {
			continue
		}
		if len(e.Chunks) == 0 {
			add(e.Sum, e.Size)
			continue
		}
		for _, c := range e.Chunks {
			add(c.Sum, c.Size)
		}
	}
	return out
}

// ContentSize is the sum of the release's file sizes.
func (x *Index) ContentSize() int64 {
	var n int64
	for _, e := range x.Entries {
		n += e.Size
	}
	return n
}

// Marshal is the index's canonical encoding.
func (x *Index) Marshal() []byte {
	b, _ := json.Marshal(x) // plain struct: cannot fail
	return b
}

// Sum is the sha256 of the index's canonical encoding.
func (x *Index) Sum() string { return SumBytes(x.Marshal()) }

// SumBytes is the hex sha256 of b.
func SumBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ParseIndex decodes an index and checks it: paths inside the release,
// in order, each once, never through a symlink; known types; sums that
// are sha256s; chunks that add up to their file.
func ParseIndex(b []byte) (*Index, error) {
	var x Index
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	if err := x.Validate(); err != nil {
		return nil, err
	}
	return &x, nil
}

// Validate checks an index read from an untrusted place.
func (x *Index) Validate() error {
	if len(x.Entries) > maxIndexEntries {
		return fmt.Errorf("index: %d entries, at most %d", len(x.Entries), maxIndexEntries)
	}
	paths := newPathCheck()
	prev := ""
	for i, e := range x.Entries {
		if i > 0 && e.Path <= prev {
			return fmt.Errorf("index: %q is out of order or repeated", e.Path)
		}
		prev = e.Path
		if err := paths.add(e.Path, e.Type == TypeSymlink); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if e.Mode&^0o777 != 0 {
			return fmt.Errorf("index: %q has mode %o", e.Path, e.Mode)
		}
		switch e.Type {
		case TypeDir:
			if e.Size != 0 || e.Sum != "" || e.Link != "" || len(e.Chunks) > 0 {
				return fmt.Errorf("index: directory %q has content", e.Path)
			}
		case TypeSymlink:
			if e.Link == "" || e.Size != 0 || e.Sum != "" || len(e.Chunks) > 0 {
				return fmt.Errorf("index: symlink %q is malformed", e.Path)
			}
		case TypeFile:
			if err := checkFileEntry(e); err != nil {
				return fmt.Errorf("index: %w", err)
			}
		default:
			return fmt.Errorf("index: %q has unknown type %q", e.Path, e.Type)
		}
	}
	return nil
}

func checkFileEntry(e Entry) error {
	if !ValidSum(e.Sum) || e.Link != "" || e.Size < 0 {
		return fmt.Errorf("file %q is malformed", e.Path)
	}
	if len(e.Chunks) == 0 {
		if e.Size > MaxObjectSize {
			return fmt.Errorf("file %q of %d bytes has no chunks", e.Path, e.Size)
		}
		return nil
	}
	var total int64
	for _, c := range e.Chunks {
		if !ValidSum(c.Sum) || c.Size <= 0 || c.Size > MaxObjectSize {
			return fmt.Errorf("file %q has a malformed chunk", e.Path)
		}
		total += c.Size
	}
	if total != e.Size {
		return fmt.Errorf("file %q: chunks add up to %d of %d bytes", e.Path, total, e.Size)
	}
	return nil
}

// ValidSum reports whether s is a hex sha256.
func ValidSum(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// pathCheck refuses entry names that would land outside a release,
// directly or through a symlink an earlier entry made, and names given
// twice: the one rule for unpacking a tar and for assembling from an
// index.
type pathCheck struct{ seen, links map[string]bool }

func newPathCheck() *pathCheck {
	return &pathCheck{seen: map[string]bool{}, links: map[string]bool{}}
}

func (c *pathCheck) add(name string, symlink bool) error {
	if name == "" || name != path.Clean(name) || name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("entry %q is outside the release", name)
	}
	if name == ManifestName || name == IndexName {
		return fmt.Errorf("entry %q is hoist's own", name)
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if c.links[d] {
			return fmt.Errorf("entry %q goes through symlink %q", name, d)
		}
	}
	if c.seen[name] {
		return fmt.Errorf("entry %q is there twice", name)
	}
	c.seen[name] = true
	if symlink {
		c.links[name] = true
	}
	return nil
}

// IndexDir lists the tree under dir as an Index, reading every file.
func IndexDir(dir string) (*Index, error) {
	var x Index
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(rel)
		if filepath.Dir(rel) == "." && (name == ManifestName || name == IndexName) {
			return nil // hoist's own, beside the release's content on a host
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: name, Mode: uint32(fi.Mode().Perm())}
		switch {
		case fi.IsDir():
			e.Type = TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type, e.Mode = TypeSymlink, 0
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			e.Type = TypeFile
			if err := chunkFile(p, &e); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type %s", name, fi.Mode().Type())
		}
		x.Entries = append(x.Entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	sort.Slice(x.Entries, func(i, j int) bool { return x.Entries[i].Path < x.Entries[j].Path })
	return &x, nil
}

// chunkFile fills e's size, sum and, for a large file, chunks.
func chunkFile(p string, e *Entry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	whole := sha256.New()
	var chunks []Chunk
	err = Chunks(io.TeeReader(f, whole), func(data []byte) error {
		chunks = append(chunks, Chunk{Sum: SumBytes(data), Size: int64(len(data))})
		e.Size += int64(len(data))
		return nil
	})
	if err != nil {
		return err
	}
	e.Sum = hex.EncodeToString(whole.Sum(nil))
	if e.Size > chunkThreshold {
		e.Chunks = chunks
	}
	return nil
}

// ErrNotInIndex is returned for an object the index does not hold.
var ErrNotInIndex = errors.New("not in the release")
