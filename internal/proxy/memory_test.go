package proxy

import "testing"

// The heap goes back to the kernel once the proxy goes quiet after a
// busy spell: never under load, and not again and again while it stays
// quiet.
func TestQuietRelease(t *testing.T) {
	var q quiet
	steps := []struct {
		allocated uint64
		want      bool
	}{
		{64 << 10, true},       // quiet from the start: what start-up left
		{64 << 10, false},      // still quiet: nothing new to give back
		{200 << 20, false},     // a load
		{quietAlloc, false},    // at the line counts as busy
		{quietAlloc - 1, true}, // quiet again
		{0, false},
	}
	for i, s := range steps {
		if got := q.release(s.allocated); got != s.want {
			t.Errorf("check %d: release(%d) = %v, want %v", i, s.allocated, got, s.want)
		}
	}
}
