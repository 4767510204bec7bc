package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The gate holds route changes back while an upgrade hands over: closing
// it waits for the changes under way, later ones wait until it opens,
// and closing it gives up, open again, when its context ends.
func TestGate(t *testing.T) {
	var g gate
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- g.close(ctx) }()
	select {
	case err := <-closed:
		t.Fatalf("close returned (%v) while a change was under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.leave()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	entered := make(chan error, 1)
	go func() { entered <- g.enter(ctx) }()
	select {
	case err := <-entered:
		t.Fatalf("a change entered (%v) a closed gate", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.open()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := g.close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a change under way past its deadline: %v", err)
	}
	g.leave()
	if err := g.enter(ctx); err != nil {
		t.Fatalf("the gate stayed closed after a close gave up: %v", err)
	}
	g.leave()
}

// Closing a socket a successor may serve never removes its file, even
// when the server closes it before the upgrade stops it.
func TestUpgraderListenerKeepsSocketFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	u := &upgrader{}
	u.listener("control", ln).Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closing the control listener removed its socket: %v", err)
	}
}
