package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Holder names this deploy in a lock: who, from where, and a token that
// tells two deploys of the same person apart; and which process it is,
// so that a later hoist on this machine knows when it is gone.
func Holder(op string) hostproto.Lock {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	name, _ := os.Hostname()
	pid := os.Getpid()
	return hostproto.Lock{Holder: fmt.Sprintf("%s@%s (pid %d)", who, name, pid), Since: time.Now().UTC().Truncate(time.Second), Op: op,
		Machine: machineID(), PID: pid, Started: processStart(pid)}
}

// machineID names this machine: systemd's machine id where there is
// one (a host name can be shared by two machines), else the host name.
func machineID() string {
	for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(f); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return "machine-id:" + string(bytes.TrimSpace(b))
		}
	}
	if h, err := os.Hostname(); err == nil {
		return "hostname:" + h
	}
	return ""
}

// processStart is when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat), or 0 where that is not known: with the
// pid, it tells a process from a later one given the same pid.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// HolderGone reports whether lk was taken by a process of this machine
// that no longer runs. A lock from another machine, or from a hoist
// that did not say which process it was, is never taken to be gone.
func HolderGone(lk hostproto.Lock) bool {
	if lk.Machine == "" || lk.PID <= 0 || lk.Machine != machineID() {
		return false
	}
	if err := syscall.Kill(lk.PID, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	// The pid runs: gone all the same when it is another process now.
	now := processStart(lk.PID)
	return lk.Started != 0 && now != 0 && now != lk.Started
}

// Unlock times: each host's release of the lock has its own deadline
// and is tried again, so that a slow host (a sudo that waits on name
// resolution) or a cancelled deploy does not leave the lock behind.
var (
	unlockTimeout  = time.Minute
	unlockAttempts = 3
	unlockBackoff  = time.Second
)

// lockAll takes the app's deploy lock on every reachable host, one host
// at a time in a fixed order, so that of two deploys started together
// exactly one gets them all and the other is refused before it changes
// anything: then refused holds every host's result, and why says why.
// A lock whose holder is a process of this machine that is gone is
// taken over, with a warning. unlock frees the locks held (and the
// connections lockAll dialled).
func (o ShipOptions) lockAll(ctx context.Context, lk hostproto.Lock) (members []fleet.Member, unlock func(), refused []fleet.Result, why string) {
	members = o.Members
	closeAll := func() {}
	if members == nil {
		members = o.Connect(ctx)
		closeAll = func() { fleet.Close(members) }
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return members[order[a]].Host < members[order[b]].Host })
	var held []int
	release := func() {
		o.unlockAll(ctx, members, held, lk.Holder)
		held = nil
	}
	unlock = func() { release(); closeAll() }
	if err := fleet.Distinct(members); err != nil {
		refused = make([]fleet.Result, len(members))
		for i, m := range members {
			refused[i] = fleet.Result{Host: m.Host, Err: err}
		}
		return members, unlock, refused, err.Error()
	}
	for _, i := range order {
		if members[i].Err != nil {
			continue
		}
		err := o.takeLock(ctx, members[i], lk)
		if err == nil {
			held = append(held, i)
			continue
		}
		release()
		h := members[i].Host
		var le *hostproto.LockedError
		why = "the deploy lock on " + h + " could not be taken"
		others := "not changed: the deploy lock on " + h + " could not be taken"
		if errors.As(err, &le) {
			why, others = "another deploy holds the lock", "not changed: the deploy lock on "+h+" is taken"
		}
		results := make([]fleet.Result, len(members))
		for j, m := range members {
			results[j] = fleet.Result{Host: m.Host, Err: m.Err}
			if m.Err == nil {
				results[j].Err = usererr.New("%s", others)
			}
		}
		results[i].Err = o.lockError(err)
		return members, unlock, results, why
	}
	return members, unlock, nil, ""
}

// takeLock takes the lock on m, taking over one whose holder is gone.
func (o ShipOptions) takeLock(ctx context.Context, m fleet.Member, lk hostproto.Lock) error {
	c := o.client(m)
	err := c.Lock(ctx, lk)
	var le *hostproto.LockedError
	if !errors.As(err, &le) || !HolderGone(le.Lock) {
		return err
	}
	o.logf(m.Host)("warning: taking over the deploy lock of %s (%s, since %s): that process no longer runs on this machine",
		le.Lock.Holder, le.Lock.Op, le.Lock.Since.Local().Format("2006-01-02 15:04:05"))
	return c.TakeOverLock(ctx, lk, le.Lock.Holder)
}

// unlockAll releases holder's lock on the members at held, all at once,
// each with its own deadline and a few attempts: the deploy's own
// context may have ended (a cancelled deploy still frees its locks).
func (o ShipOptions) unlockAll(ctx context.Context, members []fleet.Member, held []int, holder string) {
	base := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for _, i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for attempt := range unlockAttempts {
				if attempt > 0 {
					time.Sleep(unlockBackoff << (attempt - 1))
				}
				uctx, cancel := context.WithTimeout(base, unlockTimeout)
				err = o.client(members[i]).Unlock(uctx, holder, false)
				cancel()
				if err == nil {
					return
				}
			}
			o.logf(members[i].Host)("warning: the deploy lock is still held after %d attempts to release it: %v; the next deploy from this machine takes it over, or run `%s`",
				unlockAttempts, err, o.releaseCommand())
		}()
	}
	wg.Wait()
}

// releaseCommand is the command that clears the app's deploy locks.
func (o ShipOptions) releaseCommand() string {
	if o.Config != nil && o.Config.Destination != "" {
		return "hoist -d " + o.Config.Destination + " lock release"
	}
	return "hoist lock release"
}

// lockError says who holds the lock and the one command that clears it.
func (o ShipOptions) lockError(err error) error {
	var le *hostproto.LockedError
	if !errors.As(err, &le) {
		return err
	}
	lk := le.Lock
	msg := fmt.Sprintf("another deploy holds the lock: %s, since %s (%s)", lk.Holder, lk.Since.Local().Format("2006-01-02 15:04:05"), lk.Op)
	hint := fmt.Sprintf("wait for it to finish; if it died, run `%s`", o.releaseCommand())
	if lk.Machine != "" && lk.PID > 0 && lk.Machine == machineID() {
		msg += fmt.Sprintf("; it is process %d of this machine, which still runs", lk.PID)
		hint = fmt.Sprintf("wait for it to finish, or stop it; then, if the lock stays, run `%s`", o.releaseCommand())
	}
	return usererr.New("%s", msg).WithHint("%s", hint)
}
