package host

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// writeFileAtomic replaces path with data; see package atomicfile.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

// swapSymlink points link at target by renaming a fresh symlink over it,
// so readers see the old target or the new one and never no link.
func swapSymlink(target, link string) error {
	tmp := link + ".tmp-" + randomSuffix()
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("switch %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch %s: %w", link, err)
	}
	return syncDir(filepath.Dir(link))
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return hex.EncodeToString(b[:])
}
