package release

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Pack writes dir as a zstd-compressed tar to w and returns the sha256
// and size of what it wrote. Entries are in lexical order with owners
// dropped, so the same tree packs to the same bytes apart from mtimes.
func Pack(dir string, w io.Writer) (sum string, size int64, err error) {
	for _, own := range []string{ManifestName, IndexName} {
		if _, err := os.Lstat(filepath.Join(dir, own)); err == nil {
			return "", 0, fmt.Errorf("pack %s: the release may not contain %s, hoist writes it", dir, own)
		}
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return "", 0, fmt.Errorf("pack: %w", err)
	}
	if err := WriteTar(zw, dir, nil); err != nil {
		return "", 0, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return "", 0, fmt.Errorf("pack: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

// WriteTar writes the tree under dir as a plain tar stream, in lexical
// order, without owners. exclude, when set, drops an entry (a directory
// with all it holds) by its slash-separated path relative to dir.
func WriteTar(w io.Writer, dir string, exclude func(rel string) bool) error {
	tw := tar.NewWriter(w)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if exclude != nil && exclude(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		if err := addFile(tw, p, filepath.ToSlash(rel)); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, p, name string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Unpack extracts a Pack archive into dest, which must not exist yet. It
// refuses entries that would land outside dest, including through a
// symlink the archive made, names given twice, hard links and device
// files. Files are synced so that a release renamed into place after
// Unpack survives a power cut.
func Unpack(r io.Reader, dest string) error {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer zr.Close()
	return UnpackTar(zr, dest)
}

// UnpackTar extracts a plain tar stream into dest, which must not exist
// yet, with the same safety as Unpack.
func UnpackTar(r io.Reader, dest string) error {
	if err := os.Mkdir(dest, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	// Every operation goes through dest's os.Root: should a name slip
	// past the path check, the kernel still refuses to leave dest.
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	paths := newPathCheck()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if name == "." && hdr.Typeflag == tar.TypeDir {
			continue // the root itself, as `tar -C dir .` writes it
		}
		// A name given twice is refused: the second entry would act on
		// what the first made (a directory's mode set through a symlink).
		if err := paths.add(name, hdr.Typeflag == tar.TypeSymlink); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		name = filepath.FromSlash(name)
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirNew(root, name, mode|0o700); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		case tar.TypeReg:
			if err := writeFile(root, name, tr, mode); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		case tar.TypeSymlink:
			if err := mkdirParents(root, name); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		default:
			return fmt.Errorf("unpack: entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
	return syncDir(dest)
}

// mkdirNew makes the directory name, or takes over one an earlier entry
// made as a parent of its own, and gives it mode. What is at name is
// looked at without following it: only a real directory is chmodded.
func mkdirNew(root *os.Root, name string, mode fs.FileMode) error {
	if err := mkdirParents(root, name); err != nil {
		return err
	}
	err := root.Mkdir(name, mode)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := root.Lstat(name)
		if lerr != nil {
			return lerr
		}
		if !fi.IsDir() {
			return fmt.Errorf("entry %q: %s is there already", name, fi.Mode().Type())
		}
		err = nil
	}
	if err != nil {
		return err
	}
	// Mkdir's mode is masked by the umask; the archive's counts.
	return root.Chmod(name, mode)
}

// mkdirParents makes the directories above name that the archive left
// out. The path check has made sure that none of them is a symlink the
// archive made.
func mkdirParents(root *os.Root, name string) error {
	if d := filepath.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, mode fs.FileMode) error {
	if err := mkdirParents(root, name); err != nil {
		return err
	}
	// O_EXCL: never opened through a symlink, never one written twice.
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
