package certs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// tracker remembers how each certificate was obtained (the challenge the
// CA used, or the issuer it was copied from) and the last failure, for
// proxy status. certmagic does not say which challenge succeeded, so the
// tracker notes the challenges the proxy answers and, when a certificate
// comes in, records the last one; it keeps that on disk beside the
// certificates, so that it survives restarts.
type tracker struct {
	dir string

	mu       sync.Mutex
	lastSeen map[string]string // name -> challenge answered last
	obtained map[string]obtained
	failed   map[string]string
}

// obtained is how and when a certificate came in.
type obtained struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	From string    `json:"from,omitempty"` // the issuer it was copied from
}

func newTracker(dir string) *tracker {
	return &tracker{dir: dir, lastSeen: map[string]string{}, obtained: map[string]obtained{}, failed: map[string]string{}}
}

// seen notes that the proxy answered a challenge for name.
func (t *tracker) seen(name, how string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastSeen[name] = how
}

// lastChallenge is the challenge last answered for name, or def.
func (t *tracker) lastChallenge(name, def string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.lastSeen[name]; s != "" {
		return s
	}
	return def
}

// got records a certificate obtained for name and clears its failure.
func (t *tracker) got(name string, o obtained) {
	t.mu.Lock()
	t.obtained[name] = o
	delete(t.failed, name)
	t.mu.Unlock()
	if t.dir == "" {
		return
	}
	if err := os.MkdirAll(t.dir, 0o700); err == nil {
		b, _ := json.Marshal(o)
		atomicfile.Write(t.file(name), b, 0o600) // best effort: status only
	}
}

// fail records why the last attempt for name failed.
func (t *tracker) fail(name, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed[name] = why
}

// get is how name's certificate came in, from memory or disk.
func (t *tracker) get(name string) obtained {
	t.mu.Lock()
	o, ok := t.obtained[name]
	t.mu.Unlock()
	if ok || t.dir == "" {
		return o
	}
	if b, err := os.ReadFile(t.file(name)); err == nil && json.Unmarshal(b, &o) == nil {
		t.mu.Lock()
		t.obtained[name] = o
		t.mu.Unlock()
	}
	return o
}

func (t *tracker) failure(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed[name]
}

func (t *tracker) file(name string) string {
	return filepath.Join(t.dir, strings.ReplaceAll(name, "*", "_wildcard_")+".json")
}
