// Package waittest is for tests that wait for a state of the code under
// test (a count reached, a connection closed, a unit running) instead of
// sleeping for a while that decides what is tested: it polls a
// condition a bounded number of times within a bounded time, and fails
// the test, saying what it waited for, when the condition never holds.
package waittest

import (
	"testing"
	"time"
)

// Interval is how often a condition is polled.
const Interval = 10 * time.Millisecond

// For waits up to 10s for cond; see Within.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, 10*time.Second, what, cond)
}

// Within polls cond every Interval until it holds, at most limit/Interval
// times and no longer than limit, and otherwise fails t with what it
// waited for. Call it from the test's goroutine (it may call t.Fatal).
func Within(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(limit, cond) {
		t.Fatalf("waited %s for %s, in vain", limit, what)
	}
}

// Poll is Within without a test: it reports whether cond held within
// limit.
func Poll(limit time.Duration, cond func() bool) bool {
	return PollEvery(limit, Interval, cond)
}

// PollEvery is Poll with its own interval, for a condition too costly to
// check every Interval (a TLS handshake, a query to a server).
func PollEvery(limit, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for n := max(1, int(limit/every)); n > 0; n-- {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(every)
	}
	return cond()
}
