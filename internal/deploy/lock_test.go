package deploy

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// deadPID is the pid of a process of this machine that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestStaleLockOfThisMachineIsTakenOver: a deploy from this machine that
// died left its lock on one host (the host was down when it ended); the
// next deploy takes it over with a warning and goes through.
func TestStaleLockOfThisMachineIsTakenOver(t *testing.T) {
	fl, hosts := newFakeFleet(t, 3)
	a := newAppRepo(t, "")
	pid := deadPID(t)
	stale := hostproto.Lock{Holder: "ann@laptop (pid 24983)", Since: time.Now().Add(-time.Hour), Op: "deploy x", Machine: machineID(), PID: pid}
	if err := host.AcquireLock(fl.hosts["web02"].layout(), stale); err != nil {
		t.Fatal(err)
	}
	out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), nil)
	if len(fleet.Failed(out.Results())) != 0 {
		t.Fatalf("deploy over a stale lock failed: %s %v\n%s", out.Stopped, out.Results(), log)
	}
	if !strings.Contains(log, "web02: warning: taking over the deploy lock of "+stale.Holder) {
		t.Errorf("the takeover is not said:\n%s", log)
	}
	if lk, _ := host.ReadLock(fl.hosts["web02"].layout()); lk != nil {
		t.Errorf("the lock stays after the deploy: %+v", lk)
	}
}

// TestLiveLockNamesHolderAndCommand: a lock whose holder may still run
// (another machine's, or a live process of this one) is not taken; the
// error names the holder and the one command that clears it.
func TestLiveLockNamesHolderAndCommand(t *testing.T) {
	for name, lk := range map[string]hostproto.Lock{
		"another machine":     {Holder: "bob@ci (pid 7)", Op: "deploy y", Machine: "machine-id:0123", PID: deadPID(t)},
		"a live process here": {Holder: "ann@laptop (pid 1)", Op: "deploy y", Machine: machineID(), PID: os.Getpid()},
		"an older hoist":      {Holder: "ann@laptop (pid 3)", Op: "deploy y"},
	} {
		t.Run(name, func(t *testing.T) {
			fl, hosts := newFakeFleet(t, 2)
			a := newAppRepo(t, "")
			lk.Since = time.Now().Add(-time.Hour)
			if err := host.AcquireLock(fl.hosts["web01"].layout(), lk); err != nil {
				t.Fatal(err)
			}
			out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), nil)
			rs := out.Results()
			if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), lk.Holder) || !strings.Contains(usererr.HintOf(rs[0].Err), "`hoist lock release`") {
				t.Errorf("web01: %v (hint %q); want the holder and hoist lock release\n%s", rs[0].Err, usererr.HintOf(rs[0].Err), log)
			}
			if out.Stopped != "another deploy holds the lock" || fl.calls["activate"] != 0 {
				t.Errorf("stopped %q after %d activations", out.Stopped, fl.calls["activate"])
			}
			if held, _ := host.ReadLock(fl.hosts["web01"].layout()); held == nil || held.Holder != lk.Holder {
				t.Errorf("the holder's lock is gone: %+v", held)
			}
		})
	}
}

// TestHostWithoutHoistSaysSetup: a host where hoist is not installed
// (sudo: /usr/local/bin/hoist: command not found) is named as such, with
// `hoist setup` to run, and not as a lock another deploy holds.
func TestHostWithoutHoistSaysSetup(t *testing.T) {
	fl, hosts := newFakeFleet(t, 2)
	fl.hosts["web02"].noHoist = true
	a := newAppRepo(t, "")
	out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), nil)
	err := out.Results()[1].Err
	if err == nil || !strings.Contains(err.Error(), "hoist is not installed on web02") || !strings.Contains(usererr.HintOf(err), "hoist setup") {
		t.Errorf("web02: %v (hint %q)\n%s", err, usererr.HintOf(err), log)
	}
	if strings.Contains(out.Stopped, "another deploy") {
		t.Errorf("stopped: %q", out.Stopped)
	}
}

// TestLockReleaseOutlivesASlowHost: the first release of the lock hangs
// (a host whose sudo waits on name resolution, a cancelled deploy): it
// gets its own deadline and is tried again, and the lock goes.
func TestLockReleaseOutlivesASlowHost(t *testing.T) {
	defer func(d time.Duration, b time.Duration) { unlockTimeout, unlockBackoff = d, b }(unlockTimeout, unlockBackoff)
	unlockTimeout, unlockBackoff = 200*time.Millisecond, 10*time.Millisecond
	fl, hosts := newFakeFleet(t, 2)
	fl.hosts["web01"].hangUnlocks = 1
	a := newAppRepo(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	o := ShipOptions{Config: a.cfg, Hosts: hosts, Dial: fl.dial, Log: os.Stderr}
	members, unlock, refused, _ := o.lockAll(ctx, Holder("deploy z"))
	if refused != nil {
		t.Fatal(refused)
	}
	cancel() // the deploy's own context is over when it unlocks
	unlock()
	for _, m := range members {
		if lk, err := host.ReadLock(fl.hosts[m.Host].layout()); lk != nil || err != nil {
			t.Errorf("%s: still locked by %+v (%v)", m.Host, lk, err)
		}
	}
	if fl.calls["unlock"] != 3 {
		t.Errorf("%d unlocks, want 3 (one hung, tried again)", fl.calls["unlock"])
	}
}
