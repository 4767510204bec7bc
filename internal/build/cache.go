package build

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// lockfiles are the files whose content keys the build caches: when
// dependencies change, the caches start afresh.
var lockfiles = []string{
	"mix.lock", "go.sum", "Cargo.lock", "package-lock.json", "yarn.lock",
	"pnpm-lock.yaml", "Gemfile.lock", "poetry.lock", "composer.lock",
}

// CacheKey is the key of the caches for a checkout built by a builder
// with the given identity.
func CacheKey(dir, identity string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", identity)
	for _, name := range lockfiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("cache key: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Caches moves cached directories into a checkout before a build and back
// after it. Directories move by rename, so restoring even a large cache
// costs nothing; the cache root must be on the checkout's file system.
type Caches struct {
	Root  string   // CACHEDIR/caches/APP/KEY
	Paths []string // as in hoist.yml
}

// keep is how many cache keys of one app stay on disk.
const keep = 3

// OpenCaches returns the caches for app under cacheDir with key, and
// removes all but the newest keys.
func OpenCaches(cacheDir, app, key string, paths []string) (*Caches, error) {
	base := filepath.Join(cacheDir, "caches", app)
	root := filepath.Join(base, key)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("caches: %w", err)
	}
	now := time.Now()
	os.Chtimes(root, now, now)
	pruneKeys(base, key)
	return &Caches{Root: root, Paths: paths}, nil
}

func pruneKeys(base, current string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	// Newest first, the key in use before all others whatever its time.
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Name() == current || entries[j].Name() == current {
			return entries[i].Name() == current
		}
		a, _ := entries[i].Info()
		b, _ := entries[j].Info()
		return a != nil && b != nil && a.ModTime().After(b.ModTime())
	})
	for i, e := range entries {
		if i >= keep {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

func (c *Caches) stored(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Join(c.Root, "abs", strings.ReplaceAll(strings.Trim(p, "/"), "/", "%"))
	}
	return filepath.Join(c.Root, "rel", strings.ReplaceAll(filepath.Clean(p), "/", "%"))
}

// Mounts returns the absolute caches as build-environment path → host
// directory, creating the host directories.
func (c *Caches) Mounts() (map[string]string, error) {
	m := map[string]string{}
	for _, p := range c.Paths {
		if !filepath.IsAbs(p) {
			continue
		}
		d := c.stored(p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("caches: %w", err)
		}
		m[p] = d
	}
	return m, nil
}

// Restore moves the relative caches into the checkout dir.
func (c *Caches) Restore(dir string) error {
	for _, p := range c.Paths {
		if filepath.IsAbs(p) {
			continue
		}
		src, dst := c.stored(p), filepath.Join(dir, p)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("restore cache %s: %w", p, err)
		}
		os.RemoveAll(dst) // a directory committed to the repository loses to the cache
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("restore cache %s: %w", p, err)
		}
	}
	return nil
}

// Save moves the relative caches out of the checkout dir, replacing what
// was stored.
func (c *Caches) Save(dir string) error {
	for _, p := range c.Paths {
		if filepath.IsAbs(p) {
			continue
		}
		src, dst := filepath.Join(dir, p), c.stored(p)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("save cache %s: %w", p, err)
		}
		os.RemoveAll(dst)
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("save cache %s: %w", p, err)
		}
	}
	return nil
}
