package waittest

import (
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("a condition that holds on the third poll: held after %d polls", n)
	}
	n = 0
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { n++; return false }) {
		t.Error("a condition that never holds held")
	}
	if d := time.Since(start); d > time.Second || n > 50/10+2 {
		t.Errorf("a 50ms poll took %s and %d polls", d, n)
	}
	// A slow condition is polled until the time is up, not the count.
	n = 0
	start = time.Now()
	Poll(30*time.Millisecond, func() bool { n++; time.Sleep(40 * time.Millisecond); return false })
	if n > 2 {
		t.Errorf("a condition slower than the limit was polled %d times", n)
	}
}

func TestPollEvery(t *testing.T) {
	n := 0
	start := time.Now()
	if PollEvery(100*time.Millisecond, 40*time.Millisecond, func() bool { n++; return false }) {
		t.Error("a condition that never holds held")
	}
	if d := time.Since(start); d > time.Second || n > 100/40+2 {
		t.Errorf("a 100ms poll every 40ms took %s and %d polls", d, n)
	}
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
}

func TestWithinFails(t *testing.T) {
	f := &fatalRecorder{TB: t}
	Within(f, 20*time.Millisecond, "nothing", func() bool { return false })
	if f.msg == "" {
		t.Error("Within did not fail the test when the condition never held")
	}
	f.msg = ""
	Within(f, 20*time.Millisecond, "something", func() bool { return true })
	if f.msg != "" {
		t.Error("Within failed the test although the condition held")
	}
}
