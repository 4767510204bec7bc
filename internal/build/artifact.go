package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/release"
)

// Artifact is a packed release on this machine.
type Artifact struct {
	Manifest *release.Manifest
	Path     string // the .tar.zst payload
	// Reused is set when the release was packed by an earlier build.
	Reused bool

	indexOnce sync.Once
	index     *release.Index
	indexErr  error
}

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

// EachFile streams the artifact's payload and calls fn for each regular
// file that want selects, with its entry and content.
func (a *Artifact) EachFile(x *release.Index, want func(release.Entry) bool, fn func(release.Entry, io.Reader) error) error {
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

// Packed are the releases of app packed on this machine: where
// the index a host holds, and the files deltas start from, are found.
func Packed(workDir, app string) []*Artifact {
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

// Large files that may travel as deltas are kept here as they are, by
// sha256, when a release is packed: a delta needs the new file and the
// old one whole, and reading them out of a payload means decompressing
// all that comes before them.
func keptFilesDir(workDir string) string { return filepath.Join(workDir, "files") }

// MaxKeptFile is the largest file kept: host.MaxDeltaFile, the largest
// a delta is made of (the deploy tests check they agree). It is spelt out
// here so that the build does not depend on the host side.
const MaxKeptFile = 32 << 20

// Kept says whether a file of the index is kept when its release is
// packed: those that may travel as deltas.
func Kept(e release.Entry) bool {
	return e.Type == release.TypeFile && len(e.Chunks) > 0 && e.Size <= MaxKeptFile
}

// keepFiles keeps the delta candidates of the tree at dir (indexed as x).
func keepFiles(workDir, dir string, x *release.Index) error {
	kept := keptFilesDir(workDir)
	if err := os.MkdirAll(kept, 0o755); err != nil {
		return fmt.Errorf("keep files: %w", err)
	}
	for _, e := range x.Entries {
		dst := filepath.Join(kept, e.Sum)
		if !Kept(e) || fileExists(dst) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil {
			return fmt.Errorf("keep files: %w", err)
		}
		if err := atomicfile.Write(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// KeptFile reads a kept file and checks it; nil when it is not kept.
func KeptFile(workDir, sum string) []byte {
	b, err := os.ReadFile(filepath.Join(keptFilesDir(workDir), sum))
	if err != nil || release.SumBytes(b) != sum {
		return nil
	}
	return b
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
