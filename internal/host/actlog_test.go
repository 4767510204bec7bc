package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// fakeClock advances by step at each reading.
func fakeClock(start time.Time, step time.Duration) func() time.Time {
	t := start.Add(-step)
	return func() time.Time { t = t.Add(step); return t }
}

// The activation log keeps on the host what an activation did, each
// line stamped, after what earlier activations of the release left; the
// client gets the same lines as they come, but not a failure's journal,
// which it prints with the error.
func TestActivationLogIsKept(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1)
	if err := AcquireLock(l, hostproto.Lock{Holder: "ann@laptop (pid 7)", Op: "deploy " + id1}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	var client bytes.Buffer
	a, err := openActivationLog(l, id1, &client, fakeClock(start, 1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(a, "starting release %s\n", id1)
	a.Write([]byte("waiting for GET /up"))
	a.Write([]byte(" on port 3000\n"))
	if err := a.end(nil); err != nil {
		t.Fatal(err)
	}
	want := "   1.5s starting release " + id1 + "\n" +
		"   3.0s waiting for GET /up on port 3000\n" +
		"   4.5s done\n"
	if diff := cmp.Diff(want, client.String()); diff != "" {
		t.Errorf("client got (-want +got):\n%s", diff)
	}

	// A second activation of the release (a rollback to it) that fails.
	client.Reset()
	a, err = openActivationLog(l, id1, &client, fakeClock(start.Add(time.Hour), time.Second))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(a, "starting release")
	he := &hostproto.HealthError{ID: id1, Reason: "the service exited", Journal: "app: boom"}
	if err := a.end(fmt.Errorf("activate: %w", he)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(client.String(), "boom") {
		t.Errorf("the client got the journal in the log:\n%s", client.String())
	}
	b, err := os.ReadFile(l.activationLog(id1))
	if err != nil {
		t.Fatal(err)
	}
	wantFile := "== 2026-11-25T01:02:03Z activating " + id1 + " (deploy " + id1 + " by ann@laptop (pid 7))\n" + want +
		"== 2026-11-25T02:02:03Z activating " + id1 + " (deploy " + id1 + " by ann@laptop (pid 7))\n" +
		"   1.0s starting release\n" +
		"   2.0s failed: activate: release " + id1 + " failed its health check: the service exited\n" +
		"journal:\napp: boom\n"
	if diff := cmp.Diff(wantFile, string(b)); diff != "" {
		t.Errorf("activation log (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(l.activationLog(id1)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("activation log mode %v, %v; want 0600: it holds the journal", fi.Mode(), err)
	}
}

// An activation log that outgrows its bound keeps its newest lines,
// whole.
func TestActivationLogIsBounded(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1)
	a, err := openActivationLog(l, id1, &bytes.Buffer{}, fakeClock(time.Now(), time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000) + "\n"
	for i := range activationLogMax/len(line) + 10 {
		fmt.Fprintf(a, "%d %s", i, line)
	}
	a.end(errors.New("stopped"))
	b, _ := os.ReadFile(l.activationLog(id1))
	if len(b) > activationLogMax || !strings.HasSuffix(string(b), "failed: stopped\n") {
		t.Errorf("log of %d bytes (max %d) ends %q", len(b), activationLogMax, b[max(0, len(b)-40):])
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if !regexp.MustCompile(`^ +[0-9.]+s [0-9]+ x{1000}$`).MatchString(first) {
		t.Errorf("the log does not start with a whole line: %.40q", first)
	}
}
