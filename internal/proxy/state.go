package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// loadState reads the routes saved at path; none when it does not exist.
func loadState(path string) ([]hostproto.Route, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proxy state: %w", err)
	}
	var routes []hostproto.Route
	if err := json.Unmarshal(b, &routes); err != nil {
		return nil, fmt.Errorf("proxy state %s: %w", path, err)
	}
	for i := range routes {
		if err := validateRoute(&routes[i]); err != nil {
			return nil, fmt.Errorf("proxy state %s: %w", path, err)
		}
	}
	return routes, nil
}

// saveState replaces the saved routes atomically.
func saveState(path string, routes []hostproto.Route) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(routes, "", "  ")
	if err != nil {
		return fmt.Errorf("proxy state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("proxy state: %w", err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}
