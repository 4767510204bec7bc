package build

import (
	"bytes"
	"strings"
	"sync"
)

// Tail keeps the last lines of a build's own output (the command's,
// apt's, the container engine's), so that a quiet build that fails can
// still show what went wrong.
type Tail struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  []byte // a line not yet ended
}

// NewTail keeps the last n lines.
func NewTail(n int) *Tail { return &Tail{max: n} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := append(t.part, p...)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(bytes.TrimRight(b[:i], "\r")))
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
		b = b[i+1:]
	}
	t.part = append(t.part[:0:0], b...)
	return len(p), nil
}

// String returns the lines kept, the unfinished last one included.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.part))
	}
	return strings.Join(lines, "\n")
}
