package filelock

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestAcquireExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	ctx := context.Background()
	l, err := Acquire(ctx, p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files, so a second open in this process
	// contends like another hoist would.
	if _, err := Acquire(ctx, p, 300*time.Millisecond); err == nil {
		t.Fatal("a held lock was taken again")
	}
	l.Release()
	l2, err := Acquire(ctx, p, time.Second)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Release()
}
