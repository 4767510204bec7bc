package release

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// randomBytes is n bytes that do not compress, the same for a seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func chunkSums(t *testing.T, b []byte) []string {
	t.Helper()
	var sums []string
	total := 0
	err := Chunks(bytes.NewReader(b), func(c []byte) error {
		if len(c) > maxChunk || len(c) == 0 {
			t.Errorf("chunk of %d bytes", len(c))
		}
		total += len(c)
		sums = append(sums, SumBytes(c))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != len(b) {
		t.Fatalf("chunks add up to %d of %d bytes", total, len(b))
	}
	return sums
}

// TestChunksSurviveAnEdit inserts bytes in the middle of a file: only the
// chunks around the edit change, those after it are found again.
func TestChunksSurviveAnEdit(t *testing.T) {
	orig := randomBytes(1, 4<<20)
	edited := append(append(append([]byte{}, orig[:2<<20]...), []byte("one more line\n")...), orig[2<<20:]...)
	a, b := chunkSums(t, orig), chunkSums(t, edited)
	have := map[string]bool{}
	for _, s := range a {
		have[s] = true
	}
	changed := 0
	for _, s := range b {
		if !have[s] {
			changed++
		}
	}
	if len(a) < 4<<20/maxChunk || changed > 3 {
		t.Errorf("%d chunks, %d of %d changed after a 14-byte insert; want at most 3", len(a), changed, len(b))
	}
}

func TestIndexDirAndAssemble(t *testing.T) {
	src := t.TempDir()
	big := randomBytes(2, 1<<20)
	mustWrite(t, filepath.Join(src, "bin", "app"), string(big), 0o755)
	mustWrite(t, filepath.Join(src, "lib", "data.txt"), "data", 0o640)
	mustWrite(t, filepath.Join(src, "lib", "same.txt"), "data", 0o644)
	if err := os.Symlink("lib/data.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	x, err := IndexDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range x.Entries {
		paths = append(paths, e.Type+" "+e.Path)
	}
	if diff := cmp.Diff([]string{"d bin", "f bin/app", "d lib", "f lib/data.txt", "f lib/same.txt", "l link"}, paths); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if app := x.Entries[1]; len(app.Chunks) < 2 || app.Size != 1<<20 || app.Sum != SumBytes(big) {
		t.Errorf("bin/app: %d chunks, size %d", len(app.Chunks), app.Size)
	}
	// The same file twice is one object.
	if got := len(x.Objects()); got != len(x.Entries[1].Chunks)+1 {
		t.Errorf("%d objects", got)
	}
	back, err := ParseIndex(x.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if back.Sum() != x.Sum() {
		t.Error("the index does not round-trip to the same bytes")
	}

	// Assembled from objects alone, and again with files to link.
	objs := dirObjects(t, src, x)
	dest := filepath.Join(t.TempDir(), "r")
	if _, err := Assemble(x, dest, objs); err != nil {
		t.Fatal(err)
	}
	if err := Verify(x, dest); err != nil {
		t.Fatal(err)
	}
	again, err := IndexDir(dest)
	if err != nil || again.Sum() != x.Sum() {
		t.Fatalf("the assembled tree indexes differently: %v", err)
	}
	objs.files = map[string]string{x.Entries[1].Sum: filepath.Join(dest, "bin", "app")}
	linked := filepath.Join(t.TempDir(), "r")
	if a, err := Assemble(x, linked, objs); err != nil || a.Linked != 1 || a.Files != 3 {
		t.Fatalf("Assemble = %+v, %v; want 1 of 3 files linked", a, err)
	}
	a, _ := os.Stat(filepath.Join(dest, "bin", "app"))
	b, _ := os.Stat(filepath.Join(linked, "bin", "app"))
	if !os.SameFile(a, b) {
		t.Error("an unchanged file was not hard-linked")
	}
}

// memSource serves objects from memory and files to link from a map.
type memSource struct {
	objects map[string][]byte
	files   map[string]string // sum → path
}

func (m *memSource) FileWith(sum string, mode uint32) string { return m.files[sum] }
func (m *memSource) Object(sum string) (io.ReadCloser, error) {
	b, ok := m.objects[sum]
	if !ok {
		return nil, errors.New("no object " + sum)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func dirObjects(t *testing.T, dir string, x *Index) *memSource {
	t.Helper()
	m := &memSource{objects: map[string][]byte{}}
	for _, e := range x.Entries {
		if e.Type != TypeFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Chunks) == 0 {
			m.objects[e.Sum] = b
		}
		off := int64(0)
		for _, c := range e.Chunks {
			m.objects[c.Sum] = b[off : off+c.Size]
			off += c.Size
		}
	}
	return m
}

func TestAssembleRefuses(t *testing.T) {
	sum := SumBytes([]byte("x"))
	tests := map[string]Index{
		"parent dir":             {Entries: []Entry{{Path: "../evil", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"absolute":               {Entries: []Entry{{Path: "/etc/evil", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"through symlink":        {Entries: []Entry{{Path: "l", Type: TypeSymlink, Link: "/etc"}, {Path: "l/passwd", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"unclean":                {Entries: []Entry{{Path: "a/../b", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"twice":                  {Entries: []Entry{{Path: "a", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}, {Path: "a", Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"symlink then directory": {Entries: []Entry{{Path: "l", Type: TypeSymlink, Link: "../victim"}, {Path: "l", Type: TypeDir, Mode: 0o777}}},
		"hoist's own":            {Entries: []Entry{{Path: ManifestName, Type: TypeFile, Mode: 0o644, Size: 1, Sum: sum}}},
		"setuid":                 {Entries: []Entry{{Path: "a", Type: TypeFile, Mode: 0o4755, Size: 1, Sum: sum}}},
		"wrong content":          {Entries: []Entry{{Path: "a", Type: TypeFile, Mode: 0o644, Size: 1, Sum: SumBytes([]byte("y"))}}},
		"chunks short":           {Entries: []Entry{{Path: "a", Type: TypeFile, Mode: 0o644, Size: 2, Sum: sum, Chunks: []Chunk{{Sum: sum, Size: 1}}}}},
		"unknown type":           {Entries: []Entry{{Path: "a", Type: "c"}}},
	}
	// "wrong content" names a sum whose object is "x": Verify must catch it.
	src := &memSource{objects: map[string][]byte{sum: []byte("x"), SumBytes([]byte("y")): []byte("x")}}
	for name, x := range tests {
		t.Run(name, func(t *testing.T) {
			dest, check := outside(t)
			if _, err := Assemble(&x, dest, src); err == nil {
				t.Error("Assemble accepted it")
			}
			check()
		})
	}
}

func FuzzParseIndexAssemble(f *testing.F) {
	src := f.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(src, "d"), 0o755)
	os.Symlink("a", filepath.Join(src, "d", "l"))
	x, _ := IndexDir(src)
	f.Add(x.Marshal())
	f.Add([]byte(`{"entries":[{"p":"l","t":"l","l":"/"},{"p":"l/x","t":"f","h":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Add([]byte(`{"entries":[{"p":"l","t":"l","l":"../victim"},{"p":"l","t":"d","m":511}]}`))
	objects := &memSource{objects: map[string][]byte{SumBytes([]byte("x")): []byte("x")}}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseIndex(b)
		if err != nil {
			return
		}
		dest, check := outside(t)
		_, _ = Assemble(x, dest, objects)
		check()
	})
}
