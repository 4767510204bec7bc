package proxy

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// After a burst of load the Go heap keeps what it grew to: garbage no
// GC collects while nothing allocates (a GC starts when the heap grows,
// or after two minutes), and free pages that the runtime's background
// scavenger gives back to the kernel only slowly. A proxy after a load
// test held 11 MiB of heap objects, of which 5 MiB were live (heap
// profile), and 4 MiB of free pages, for minutes. releaseIdle collects
// and hands them back once the proxy has gone quiet.

// idleCheck is how often releaseIdle looks: seldom enough that its
// wake-ups cost nothing measurable on WebSocket round trips (a 10 s
// ticker was level with none in docs/benchmarks.md's echo runs).
const idleCheck = 10 * time.Second

// quietAlloc is the allocation, over one idleCheck, under which the
// proxy counts as quiet: a few requests, health checks and metrics
// scrapes, not a load.
const quietAlloc = 1 << 20

// releaseIdle runs a GC and returns the free heap to the kernel on the
// first quiet idleCheck after a busy one, until ctx ends.
func releaseIdle(ctx context.Context) {
	t := time.NewTicker(idleCheck)
	defer t.Stop()
	samples := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(samples)
	var q quiet
	last := samples[0].Value.Uint64()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rtmetrics.Read(samples)
		allocs := samples[0].Value.Uint64()
		if q.release(allocs - last) {
			debug.FreeOSMemory()
		}
		last = allocs
	}
}

// quiet tells, check by check, when the heap is worth giving back.
type quiet struct{ released bool }

// release reports whether, with allocated bytes allocated since the
// last check, the heap is to be given back now: the proxy went quiet
// after a busy spell. Once given back, not again until the next busy
// spell, so that an idle proxy is not woken for a GC every check.
func (q *quiet) release(allocated uint64) bool {
	if allocated >= quietAlloc {
		q.released = false
		return false
	}
	if q.released {
		return false
	}
	q.released = true
	return true
}
