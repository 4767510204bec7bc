package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/systemd"
)

// journalLines is how much of a failed release's journal is reported.
const journalLines = 20

// activate makes release id the one that serves: it installs the units
// for s, runs the before_switch hook, stops the running release, starts id, waits for its health
// check and only then points current at it. If id never turns healthy,
// it is stopped, the previous release is started again, current is left
// alone, and a *HealthError is returned. Older releases beyond
// s.KeepReleases are pruned after a success.
func activate(ctx context.Context, l Layout, s *hostproto.Spec, id string, log io.Writer) error {
	if _, err := l.Manifest(id); err != nil {
		return fmt.Errorf("release %s is not on this host: %w", id, err)
	}
	// A host set up by an older hoist converges here. (Without the app's
	// user nothing runs, and the hook or unit says so.)
	if err := restrictApp(l); err != nil && !errors.As(err, new(user.UnknownGroupError)) {
		return err
	}
	if err := ensureCookie(l); err != nil {
		return err
	}
	if _, err := installUnits(ctx, l, s); err != nil {
		return err
	}
	if s.BeforeSwitch != "" {
		// The previous release still serves while this runs.
		if err := runHook(ctx, l, s, id, "before_switch", s.BeforeSwitch, log); err != nil {
			return err
		}
	}
	if s.Proxied() {
		if err := activateProxied(ctx, l, s, id, log); err != nil {
			return err
		}
		return afterSwitch(ctx, l, s, id, log)
	}
	// Without the proxy the app serves run.port itself.
	if _, err := l.newPorts(id, s.Port, s.ErlangNetwork); err != nil {
		return err
	}
	prev := l.CurrentID()
	running, err := runningReleases(ctx, l)
	if err != nil {
		return err
	}
	// Until the edge proxy runs releases side by side, the old release
	// must free the port before the new one starts.
	for _, r := range running {
		if r != id {
			if err := stopRelease(ctx, l, r, log); err != nil {
				return err
			}
		}
	}
	if !slices.Contains(running, id) {
		if err := claimPort(ctx, s.Port); err != nil {
			return revert(ctx, l, s, id, prev, err.Error(), log)
		}
	}
	unit := systemd.InstanceName(l.App, id)
	fmt.Fprintf(log, "starting release %s\n", id)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return revert(ctx, l, s, id, prev, err.Error(), log)
	}
	if reason := waitHealthy(ctx, unit, s.Port, s, log); reason != "" {
		return revert(ctx, l, s, id, prev, reason, log)
	}
	if err := swapSymlink("releases/"+id, l.Current()); err != nil {
		return err
	}
	fmt.Fprintf(log, "release %s is current\n", id)
	return afterSwitch(ctx, l, s, id, log)
}

// afterSwitch prunes old releases and runs the after_switch hook.
func afterSwitch(ctx context.Context, l Layout, s *hostproto.Spec, id string, log io.Writer) error {
	// A release that failed once (a missing secret, since set) and now
	// serves is a good one.
	if err := clearFailed(l, id); err != nil {
		fmt.Fprintf(log, "warning: %v\n", err)
	}
	if err := Prune(l, s.KeepReleases); err != nil {
		fmt.Fprintf(log, "warning: prune: %v\n", err)
	}
	if s.AfterSwitch != "" {
		if err := runHook(ctx, l, s, id, "after_switch", s.AfterSwitch, log); err != nil {
			return fmt.Errorf("release %s is current, but %w", id, err)
		}
	}
	return nil
}

// revert stops the failed release and restarts the previous one.
func revert(ctx context.Context, l Layout, s *hostproto.Spec, id, prev, reason string, log io.Writer) error {
	he := stopFailed(ctx, l, id, reason, log)
	if prev != "" && prev != id {
		fmt.Fprintf(log, "restarting previous release %s\n", prev)
		prevUnit := systemd.InstanceName(l.App, prev)
		if _, err := systemd.Systemctl(ctx, "start", prevUnit); err != nil {
			he.Reason += "; and restarting the previous release " + prev + " failed: " + err.Error()
		} else if why := waitHealthy(ctx, prevUnit, s.Port, s, log); why != "" {
			// Return only once the old release serves again, so that the
			// caller's "previous release keeps serving" holds.
			he.Reason += "; and the previous release " + prev + " is not healthy either: " + why
		}
	}
	return he
}

// stopFailed stops a release that did not turn healthy, marks it failed
// and returns the error that says why, with its journal.
func stopFailed(ctx context.Context, l Layout, id, reason string, log io.Writer) *hostproto.HealthError {
	unit := systemd.InstanceName(l.App, id)
	he := &hostproto.HealthError{ID: id, Reason: reason, Journal: systemd.JournalTail(ctx, unit, journalLines)}
	_, _ = systemd.Systemctl(ctx, "stop", unit)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if err := markFailed(l, id, reason); err != nil {
		fmt.Fprintf(log, "warning: %v\n", err)
	}
	return he
}

// stopRelease stops release id and logs how long that took: a release
// that does not stop on SIGTERM holds a deploy up to TimeoutStopSec.
func stopRelease(ctx context.Context, l Layout, id string, log io.Writer) error {
	start := time.Now()
	fmt.Fprintf(log, "stopping release %s\n", id)
	if _, err := systemd.Systemctl(ctx, "stop", systemd.InstanceName(l.App, id)); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	fmt.Fprintf(log, "stopped release %s in %.1fs\n", id, time.Since(start).Seconds())
	return nil
}

// waitHealthy polls the health URL until it answers 2xx, the unit dies,
// or the timeout passes; it returns why it gave up, or "".
func waitHealthy(ctx context.Context, unit string, port int, s *hostproto.Spec, log io.Writer) string {
	start := time.Now()
	fmt.Fprintf(log, "waiting for GET %s on port %d to answer 2xx, for up to %s\n", s.HealthPath, port, s.HealthTimeout)
	reason := pollHealthy(ctx, unit, port, s)
	if reason == "" {
		fmt.Fprintf(log, "healthy after %.1fs\n", time.Since(start).Seconds())
	}
	return reason
}

func pollHealthy(ctx context.Context, unit string, port int, s *hostproto.Spec) string {
	ctx, cancel := context.WithTimeout(ctx, s.HealthTimeout)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + s.HealthPath
	client := &http.Client{Timeout: min(s.HealthInterval*2, 5*time.Second)}
	last := "no answer yet"
	for {
		// auto-restart means it already died once: a release that crashes
		// on start must not become current because a retry got lucky.
		if u, err := systemd.Show(ctx, unit); err == nil && (u.ActiveState == "failed" || u.ActiveState == "inactive" || u.SubState == "auto-restart") {
			// A start systemd itself fumbled is not the release's fault:
			// let Restart= try again within the timeout.
			if !(u.SubState == "auto-restart" && u.ExecMainStatus == systemd.ExitCgroup) {
				return fmt.Sprintf("the service exited (%s/%s, status %d)", u.ActiveState, u.SubState, u.ExecMainStatus)
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return ""
			}
			last = "GET " + s.HealthPath + " answered " + resp.Status
		} else if !errors.Is(err, context.DeadlineExceeded) {
			last = "GET " + s.HealthPath + ": " + shortNetErr(err)
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("not healthy within %s; last: %s", s.HealthTimeout, last)
		case <-time.After(s.HealthInterval):
		}
	}
}

func shortNetErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// runningReleases lists the release ids whose units are active or starting.
func runningReleases(ctx context.Context, l Layout) ([]string, error) {
	names, err := systemd.ListUnits(ctx, systemd.InstancePattern(l.App))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		u, err := systemd.Show(ctx, n)
		if err != nil {
			return nil, err
		}
		if u.ActiveState == "active" || u.ActiveState == "activating" || u.ActiveState == "reloading" {
			ids = append(ids, instanceID(l.App, n))
		}
	}
	return ids, nil
}

func instanceID(app, unit string) string {
	return strings.TrimSuffix(strings.TrimPrefix(unit, "hoist-"+app+"@"), ".service")
}

// Prune removes releases beyond keep: failed releases first (all but
// the newest failure, kept for inspection), then the oldest good ones,
// never the current one. What is kept beside a release (its port file,
// activation log, failed mark) goes with it, as does what releases
// already gone left.
func Prune(l Layout, keep int) error {
	ids, err := l.ReleaseIDs()
	if err != nil {
		return err
	}
	cur := l.CurrentID()
	failed := failedReleases(l)
	var doomed []string
	newestFailure := ""
	for _, id := range ids {
		if _, ok := failed[id]; ok && id != cur {
			if newestFailure != "" {
				doomed = append(doomed, newestFailure)
			}
			newestFailure = id
		}
	}
	// The current release counts first, then the newest good ones.
	good := 0
	if cur != "" {
		good = 1
	}
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if _, ok := failed[id]; ok || id == cur {
			continue
		}
		if good++; good > keep {
			doomed = append(doomed, id)
		}
	}
	for _, id := range doomed {
		if err := os.RemoveAll(l.Release(id)); err != nil {
			return fmt.Errorf("prune %s: %w", id, err)
		}
	}
	return pruneBesides(l)
}

// pruneBesides removes the files kept beside releases (port files,
// activation logs, failed marks) whose release is no longer on disk.
func pruneBesides(l Layout) error {
	for _, d := range []struct{ dir, suffix string }{
		{l.Ports(), ".env"}, {l.activationsDir(), ".log"}, {l.failedDir(), ".json"},
	} {
		entries, err := os.ReadDir(d.dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		for _, e := range entries {
			id, ok := strings.CutSuffix(e.Name(), d.suffix)
			if !ok || !release.ValidID(id) {
				continue
			}
			if _, err := os.Stat(l.Release(id)); errors.Is(err, os.ErrNotExist) {
				if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil {
					return fmt.Errorf("prune: %w", err)
				}
			}
		}
	}
	return nil
}

// boot starts the current release; the boot unit runs it at start-up.
func boot(ctx context.Context, l Layout) error {
	id := l.CurrentID()
	if id == "" {
		return nil
	}
	if err := l.renewEPMD(id); err != nil {
		return err
	}
	_, err := systemd.Systemctl(ctx, "start", "--no-block", systemd.InstanceName(l.App, id))
	return err
}

// checkCurrent asks the current release for its health once, as activate's
// check does: the unit must run and the health path answer 2xx. It
// returns the current release's id.
func checkCurrent(ctx context.Context, l Layout, s *hostproto.Spec) (string, error) {
	id := l.CurrentID()
	if id == "" {
		return "", errors.New("no release is current")
	}
	unit := systemd.InstanceName(l.App, id)
	if u, err := systemd.Show(ctx, unit); err != nil || u.ActiveState != "active" {
		return id, &hostproto.HealthError{ID: id, Reason: "the service is not running", Journal: systemd.JournalTail(ctx, unit, journalLines)}
	}
	url := "http://127.0.0.1:" + strconv.Itoa(l.heldPort(id, s.Port)) + s.HealthPath
	client := &http.Client{Timeout: min(max(s.HealthInterval*2, time.Second), 5*time.Second)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return id, &hostproto.HealthError{ID: id, Reason: "GET " + s.HealthPath + ": " + shortNetErr(err)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return id, &hostproto.HealthError{ID: id, Reason: "GET " + s.HealthPath + " answered " + resp.Status, Journal: systemd.JournalTail(ctx, unit, journalLines)}
	}
	return id, nil
}
