package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// WriteUnits writes the units under dir whose content differs, and
// reloads systemd if any did; it reports whether anything changed. A
// name may hold a directory: NAME.service.d/hoist.conf is a drop-in.
func WriteUnits(ctx context.Context, dir string, units map[string][]byte) (bool, error) {
	changed := false
	for name, content := range units {
		p := filepath.Join(dir, name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, content) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, fmt.Errorf("install units: %w", err)
		}
		if err := atomicfile.Write(p, content, 0o644); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, reloadIf(ctx, changed)
}

// RemoveUnits removes the named units under dir, and reloads systemd if
// any was there; it reports whether anything changed.
func RemoveUnits(ctx context.Context, dir string, names ...string) (bool, error) {
	changed := false
	for _, name := range names {
		err := os.Remove(filepath.Join(dir, name))
		if err == nil {
			changed = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("remove units: %w", err)
		}
	}
	return changed, reloadIf(ctx, changed)
}

func reloadIf(ctx context.Context, changed bool) error {
	if !changed {
		return nil
	}
	if _, err := Systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("install units: %w", err)
	}
	return nil
}
