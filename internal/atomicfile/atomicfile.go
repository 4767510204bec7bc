// Package atomicfile replaces files so that a crash at any point leaves
// either the old content or the new, never a mix: write a temporary file
// beside the target, fsync it, rename it over the target, fsync the
// directory.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data and mode.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteOwned(path, data, mode, -1, -1)
}

// WriteOwned replaces path with data and mode, owned by uid and gid from
// the start (-1 keeps the writer's): a secret for another user is never
// readable by anyone else.
func WriteOwned(path string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := Create(path, mode)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return f.Commit()
}

// File is a new content of its path being written: nothing is visible
// at the path until Commit, which syncs it and renames it into place.
type File struct {
	*os.File
	path   string
	done   bool
	synced bool // synced and closed by a CommitNewAs that found its name taken
}

// Create starts a replacement of path with mode, beside it.
func Create(path string, mode os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &File{File: f, path: path}, nil
}

// Commit makes what was written the content of the path, durably.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("write %s: already finished", f.path)
	}
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// CommitNew is Commit that never replaces a file: when path exists it
// fails with an error that is os.ErrExist, and the file can be
// committed under another name (CommitNewAs).
func (f *File) CommitNew() error { return f.CommitNewAs(f.path) }

// CommitNewAs is CommitNew under path, in the same directory.
func (f *File) CommitNewAs(path string) error {
	if f.done {
		return fmt.Errorf("write %s: already finished", path)
	}
	if !f.synced {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			f.Abort()
			return fmt.Errorf("write %s: %w", path, err)
		}
		f.synced = true
	}
	// link(2) refuses an existing name, where rename(2) replaces it.
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write %s: %w", path, os.ErrExist)
		}
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	f.done = true
	os.Remove(f.Name())
	return SyncDir(filepath.Dir(path))
}

// Abort drops what was written; after Commit it does nothing, so that
// it can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	if !f.synced {
		f.Close()
	}
	os.Remove(f.Name())
}

// SyncDir makes a rename or creation in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
