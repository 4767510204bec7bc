package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// A release that failed its health check stays on disk for inspection,
// marked failed: it is listed as such, never counted toward
// keep_releases, never picked by a rollback without an id, and pruned
// first. The mark is a small file beside the releases, since a release
// directory never changes once in place.

// failure is what a failed-release mark holds.
type failure struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// markFailed records that release id failed, and why.
func markFailed(l Layout, id, reason string) error {
	if err := os.MkdirAll(l.failedDir(), 0o755); err != nil {
		return fmt.Errorf("mark %s failed: %w", id, err)
	}
	b, _ := json.Marshal(failure{At: time.Now().UTC().Truncate(time.Second), Reason: reason})
	return writeFileAtomic(l.failedFile(id), b, 0o644)
}

// clearFailed removes the mark of a release that has now served.
func clearFailed(l Layout, id string) error {
	if err := os.Remove(l.failedFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear failed mark of %s: %w", id, err)
	}
	return nil
}

// failedReleases maps the marked releases to their failures.
func failedReleases(l Layout) map[string]failure {
	out := map[string]failure{}
	entries, err := os.ReadDir(l.failedDir())
	if err != nil {
		return out
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		var f failure
		if b, err := os.ReadFile(l.failedFile(id)); err == nil && json.Unmarshal(b, &f) == nil {
			out[id] = f
		}
	}
	return out
}
