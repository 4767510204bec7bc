package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// The audit trail: every deploy, rollback, setup, change of secrets,
// maintenance switch and restore appends one line to the app's
// audit.log on each host it touches — who, when, what, which release,
// how it ended. A line is one JSON object written with a single write
// to a file opened O_APPEND, so lines of two hoists never interleave,
// and fsynced before the verb answers.

// Audit outcomes.
const (
	OutcomeOK     = "ok"
	OutcomeFailed = "failed"
)

// maxAuditError bounds the error kept in a line (a failed health check
// carries a journal).
const maxAuditError = 1000

// audit appends what the call did to the app's audit trail; a failure
// to write it is reported on stderr, since the operation is done.
func (c *call) audit(op, release, detail string, opErr error) {
	e := hostproto.AuditEntry{Time: time.Now().UTC().Truncate(time.Millisecond), App: c.layout.App, Destination: c.destination,
		Op: op, Release: release, Detail: detail, Outcome: OutcomeOK, Who: c.actor, SSH: currentSSHLogin()}
	if opErr != nil {
		e.Outcome, e.Error = OutcomeFailed, hostproto.Truncate(opErr.Error(), maxAuditError)
	}
	if err := appendAudit(c.layout, e); err != nil {
		fmt.Fprintf(c.stderr, "warning: audit trail: %v\n", err)
	}
}

func appendAudit(l Layout, e hostproto.AuditEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit line: %w", err)
	}
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(l.AuditLog(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return f.Sync()
}

// readAudit returns the last n lines of the app's audit trail, oldest
// first (n 0: all of it).
func readAudit(l Layout, n int) ([]hostproto.AuditEntry, error) {
	f, err := os.Open(l.AuditLog())
	if errors.Is(err, os.ErrNotExist) {
		return []hostproto.AuditEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	defer f.Close()
	out := []hostproto.AuditEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e hostproto.AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a line cut by a crash before its fsync
		}
		out = append(out, e)
		if n > 0 && len(out) > 2*n {
			out = append(out[:0], out[len(out)-n:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// changedNames says which variables content sets, changes or removes
// against the env file at path: names only, never values.
func changedNames(path string, content []byte) string {
	old, _ := readEnvFile(path)
	now, _ := parseEnv(bytes.NewReader(content))
	was, is := envMap(old), envMap(now)
	var set, removed []string
	for k, v := range is {
		if w, ok := was[k]; !ok || w != v {
			set = append(set, k)
		}
	}
	for k := range was {
		if _, ok := is[k]; !ok {
			removed = append(removed, k)
		}
	}
	sort.Strings(set)
	sort.Strings(removed)
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "set "+strings.Join(set, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+strings.Join(removed, ", "))
	}
	return strings.Join(parts, "; ")
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
