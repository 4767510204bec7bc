package release

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
)

// Source is where Assemble takes a release's content from.
type Source interface {
	// FileWith names an existing file whose content has sum and whose
	// permission bits are mode, to hard-link; "" when there is none.
	FileWith(sum string, mode uint32) string
	// Object opens an object of the index by its sum.
	Object(sum string) (io.ReadCloser, error)
}

// Assemble makes dest, which must not exist yet, into the release x
// describes: unchanged files hard-linked from src, the others written
// from its objects. It refuses what Unpack refuses (paths outside dest,
// through a symlink), then reads every file back and checks it against
// x before it returns: a release assembled without error is whole.
func Assemble(x *Index, dest string, src Source) (Assembled, error) {
	var a Assembled
	if err := x.Validate(); err != nil {
		return a, err
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		return a, fmt.Errorf("assemble: %w", err)
	}
	// Validate refused names through symlinks and names given twice; the
	// os.Root makes the kernel refuse to leave dest all the same.
	root, err := os.OpenRoot(dest)
	if err != nil {
		return a, fmt.Errorf("assemble: %w", err)
	}
	defer root.Close()
	var dirs []int // entry indexes, to get their modes once filled
	for i, e := range x.Entries {
		name := filepath.FromSlash(e.Path)
		var err error
		switch e.Type {
		case TypeDir:
			// Writable by its owner until the files are in; its mode last.
			err = root.Mkdir(name, 0o700)
			dirs = append(dirs, i)
		case TypeSymlink:
			err = root.Symlink(e.Link, name)
		case TypeFile:
			var linked bool
			linked, err = placeFile(root, dest, name, e, src)
			a.Files++
			if linked {
				a.Linked++
			}
		}
		if err != nil {
			return a, fmt.Errorf("assemble %s: %w", e.Path, err)
		}
	}
	for _, i := range dirs {
		e := x.Entries[i]
		if err := root.Chmod(filepath.FromSlash(e.Path), fs.FileMode(e.Mode)|0o700); err != nil {
			return a, fmt.Errorf("assemble: %w", err)
		}
	}
	if err := Verify(x, dest); err != nil {
		return a, err
	}
	return a, syncDir(dest)
}

// Assembled counts the files of an assembled release, and those of them
// that were hard-linked.
type Assembled struct {
	Files, Linked int
}

// placeFile hard-links an identical file, or writes the file from its
// objects and syncs it.
func placeFile(root *os.Root, dest, name string, e Entry, src Source) (linked bool, err error) {
	if p := src.FileWith(e.Sum, e.Mode); p != "" {
		// link(2) takes its source from outside dest, which os.Root
		// cannot; it does not follow a symlink at either end, and the
		// directories above the new name are the ones this Assemble made.
		err := os.Link(p, filepath.Join(dest, name))
		if err == nil || !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EMLINK) {
			return err == nil, err
		}
		// Another filesystem, or links refused: copy instead.
	}
	return false, writeObjects(root, name, e, src)
}

func writeObjects(root *os.Root, name string, e Entry, src Source) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(e.Mode))
	if err != nil {
		return err
	}
	defer f.Close()
	objects := e.Chunks
	if len(objects) == 0 {
		objects = []Chunk{{Sum: e.Sum, Size: e.Size}}
	}
	for _, c := range objects {
		if err := copyObject(f, src, c); err != nil {
			return err
		}
	}
	if err := f.Chmod(fs.FileMode(e.Mode)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func copyObject(w io.Writer, src Source, c Chunk) error {
	r, err := src.Object(c.Sum)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(w, io.LimitReader(r, c.Size))
	if err != nil {
		return err
	}
	if n != c.Size {
		return fmt.Errorf("object %.12s: %d of %d bytes", c.Sum, n, c.Size)
	}
	return nil
}

// Verify checks the tree at dir against x: every entry is there with
// its type, and every file has x's size and checksum. Files are read on
// all processors at once.
func Verify(x *Index, dir string) error {
	var files []Entry
	for _, e := range x.Entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		switch e.Type {
		case TypeDir:
			if !fi.IsDir() {
				return fmt.Errorf("verify: %s is not a directory", e.Path)
			}
		case TypeSymlink:
			if l, err := os.Readlink(p); err != nil || l != e.Link {
				return fmt.Errorf("verify: %s is not the symlink to %s", e.Path, e.Link)
			}
		case TypeFile:
			if !fi.Mode().IsRegular() || fi.Size() != e.Size {
				return fmt.Errorf("verify: %s is not a file of %d bytes", e.Path, e.Size)
			}
			files = append(files, e)
		}
	}
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = verifyFile(dir, files[i])
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

func verifyFile(dir string, e Entry) error {
	sum, err := FileSum(filepath.Join(dir, filepath.FromSlash(e.Path)))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if sum != e.Sum {
		return fmt.Errorf("verify: %s has sha256 %.12s, the index says %.12s", e.Path, sum, e.Sum)
	}
	return nil
}

// FileSum is the hex sha256 of the file at p.
func FileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
