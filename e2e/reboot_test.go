//go:build lab

package e2e

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/waittest"
)

// TestPowerCutMidDeploy cuts a host's power while a deploy is activating
// a new release: when the host is back, it serves the previous release,
// which is still current, and the half-done deploy left only a lock that
// `hoist lock release` clears.
func TestPowerCutMidDeploy(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "powercut", 3106, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	// The next release boots slowly, so the deploy sits in its health check.
	a.edit(t, "hoist.yml", "run:\n", "run:\n  env:\n    STARTUP_DELAY: 10s\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, stderr := startHoist(ctx, t, a.dir, "deploy")
	activating := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "activating") {
				seen = true
				activating <- true
			}
		}
		if !seen {
			activating <- false
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case ok := <-activating:
		if !ok {
			t.Fatal("the deploy ended before activating")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the deploy never reached activation")
	}
	// The power goes while the new release runs, not yet healthy.
	conn := dialLab(t, hosts[0])
	waittest.Within(t, time.Minute, "the new release's unit to run", func() bool {
		out := labRun(t, conn, "systemctl list-units --plain --no-legend --state=active,activating "+transport.Quote(systemd.InstancePattern("powercut")))
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] != systemd.InstanceName("powercut", r1) {
				return true
			}
		}
		return false
	})
	o := lab.Options{Name: labName, KeyPath: filepath.Join(work, "home", "lab", "id_ed25519"), KnownHostsPath: filepath.Join(work, "home", "known_hosts")}
	if err := lab.PowerCut(o, hosts[0]); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Error("the deploy succeeded although its host lost power")
	}

	mustHoist(t, "", "lab", "up", "--name", labName, "--hosts", "2")
	// The boot unit starts the current release; give it a bounded while.
	waittest.Poll(30*time.Second, func() bool { return a.served(hosts[0]) == "hello from release "+r1 })
	a.wantServed(t, hosts[:1], r1)
	st := status(t, a)[0]
	if st.Status.Current != r1 {
		t.Errorf("current is %q after the power cut, want %s", st.Status.Current, r1)
	}
	if st.Status.Lock == nil {
		t.Error("the interrupted deploy left no lock; expected its stale lock")
	}
	mustHoist(t, a.dir, "lock", "release")
	a.edit(t, "hoist.yml", "    STARTUP_DELAY: 10s\n", "    STARTUP_DELAY: 0s\n")
	r3 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts[:1], r3)
}
