package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/systemd"
)

// Scheduled tasks: hoist.yml's schedule, as systemd timers. setup and
// deploy send each host the tasks it runs (the schedule verb), which it
// keeps in schedule.json with the app's port and plain environment, and
// installs as a timer and a hardened oneshot service each; the service
// runs `hoist host task`, which runs the task's command in the current
// release as exec does, and records how the run went in tasks/NAME.json
// for status.

// exitTimeout is a run's status when it ran out of time, as timeout(1)'s.
const exitTimeout = 124

func (l Layout) scheduleFile() string          { return filepath.Join(l.Root, "schedule.json") }
func (l Layout) taskRecords() string           { return filepath.Join(l.Root, "tasks") }
func (l Layout) taskRecord(name string) string { return filepath.Join(l.taskRecords(), name+".json") }

var (
	// scheduleVerb installs the host's tasks and removes the others.
	scheduleVerb = verb[hostproto.ScheduleArgs, hostproto.ScheduleResult]{hostproto.ScheduleVerb, func(ctx context.Context, c *call, a hostproto.ScheduleArgs) (hostproto.ScheduleResult, error) {
		return installSchedule(ctx, c.layout, &a)
	}}
	// taskVerb is what a task's service runs.
	taskVerb = streamVerb[hostproto.TaskArgs]{hostproto.TaskVerb, func(ctx context.Context, c *call, a hostproto.TaskArgs) (int, error) {
		return runTask(ctx, c.layout, a.Name, c.stdout, c.stderr)
	}}
)

// installSchedule makes the host's timers those of a: every calendar is
// checked with systemd's own parser first, and one it cannot read
// changes nothing.
func installSchedule(ctx context.Context, l Layout, a *hostproto.ScheduleArgs) (hostproto.ScheduleResult, error) {
	res := hostproto.ScheduleResult{Tasks: []string{}}
	for _, t := range a.Tasks {
		if out, err := systemd.Analyze(ctx, "calendar", t.Calendar); err != nil {
			if res.Invalid == nil {
				res.Invalid = map[string]string{}
			}
			res.Invalid[t.Name] = calendarComplaint(err, out)
		}
	}
	if res.Invalid != nil || a.Check {
		return res, nil
	}
	old, err := installedTasks(l)
	if err != nil {
		return res, err
	}
	if len(a.Tasks) > 0 {
		if err := installTasks(ctx, l, a); err != nil {
			return res, err
		}
	}
	for _, t := range a.Tasks {
		res.Tasks = append(res.Tasks, t.Name)
	}
	for _, name := range old {
		if slices.Contains(res.Tasks, name) {
			continue
		}
		if err := removeTask(ctx, l, name); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, name)
	}
	if len(a.Tasks) == 0 {
		if err := os.Remove(l.scheduleFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("schedule: %w", err)
		}
	}
	return res, nil
}

// calendarComplaint is systemd-analyze's own words about a calendar.
func calendarComplaint(err error, out string) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, ": exit status "); ok {
		if _, m, ok := strings.Cut(after, ": "); ok {
			msg = m // systemd-analyze's stderr, after the command line and status
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(out)
	}
	return strings.TrimSpace(msg)
}

// installedTasks are the tasks whose timers hoist wrote for the app.
func installedTasks(l Layout) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(UnitDir, systemd.TaskPattern(l.App)+".timer"))
	if err != nil {
		return nil, err
	}
	var tasks []string
	for _, p := range paths {
		n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "hoist-"+l.App+".task."), ".timer")
		if names.Valid(n) {
			tasks = append(tasks, n)
		}
	}
	return tasks, nil
}

func installTasks(ctx context.Context, l Layout, a *hostproto.ScheduleArgs) error {
	if _, err := os.Stat(l.StateDir()); err != nil {
		return fmt.Errorf("schedule: %s is missing: run hoist setup", l.StateDir())
	}
	if err := os.MkdirAll(l.taskRecords(), 0o700); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	if err := writeFileAtomic(l.scheduleFile(), b, 0o600); err != nil {
		return err
	}
	dest, _, err := recordedDestination(l)
	if err != nil {
		return err
	}
	units := map[string][]byte{}
	var timers, changed []string
	for _, t := range a.Tasks {
		svc, timer, err := systemd.TaskUnits(systemd.Task{App: l.App, Name: t.Name, Calendar: t.Calendar, Timeout: t.Timeout,
			HoistBin: BinPath, Request: unitRequest(l.App, dest, hostproto.TaskArgs{Name: t.Name}), StateDir: l.StateDir(), RecordDir: l.taskRecords()})
		if err != nil {
			return err
		}
		tn := systemd.TaskTimerName(l.App, t.Name)
		units[systemd.TaskServiceName(l.App, t.Name)], units[tn] = svc, timer
		timers = append(timers, tn)
		if have, err := os.ReadFile(filepath.Join(UnitDir, tn)); err == nil && string(have) != string(timer) {
			changed = append(changed, tn) // a new calendar: the timer is set again
		}
	}
	if _, err := writeUnits(ctx, units); err != nil {
		return err
	}
	if len(changed) > 0 {
		if _, err := systemd.Systemctl(ctx, append([]string{"restart"}, changed...)...); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
	}
	if _, err := systemd.Systemctl(ctx, append([]string{"enable", "--now"}, timers...)...); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	return nil
}

// removeTask stops task name's timer (and a run under way), and
// removes its units and record.
func removeTask(ctx context.Context, l Layout, name string) error {
	timer, svc := systemd.TaskTimerName(l.App, name), systemd.TaskServiceName(l.App, name)
	if _, err := systemd.Systemctl(ctx, "disable", "--now", timer); err != nil && !strings.Contains(err.Error(), "not loaded") && !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("schedule: %w", err)
	}
	systemd.Systemctl(ctx, "stop", svc) // nothing to stop is fine
	if _, err := systemd.RemoveUnits(ctx, UnitDir, timer, svc); err != nil {
		return err
	}
	if err := os.Remove(l.taskRecord(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("schedule: %w", err)
	}
	return nil
}

func readSchedule(l Layout) (*hostproto.ScheduleArgs, error) {
	b, err := os.ReadFile(l.scheduleFile())
	if errors.Is(err, os.ErrNotExist) {
		return &hostproto.ScheduleArgs{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	var a hostproto.ScheduleArgs
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("schedule: read %s: %w", l.scheduleFile(), err)
	}
	return &a, nil
}

// runTask runs task name's command in the current release, as exec
// does, for at most its timeout; it records how the run went and
// returns the command's exit status.
func runTask(ctx context.Context, l Layout, name string, stdout, stderr io.Writer) (int, error) {
	sch, err := readSchedule(l)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(sch.Tasks, func(t hostproto.Task) bool { return t.Name == name })
	if i < 0 {
		return 0, fmt.Errorf("task %s is not in %s's schedule on this host", name, l.App)
	}
	t := sch.Tasks[i]
	run := hostproto.TaskRun{Started: time.Now().UTC().Truncate(time.Millisecond), Release: l.CurrentID()}
	var out tailWriter
	code, err := runTaskCommand(ctx, l, sch, t, run.Release, io.MultiWriter(stdout, &out), io.MultiWriter(stderr, &out))
	run.Seconds = time.Since(run.Started).Round(time.Millisecond).Seconds()
	run.ExitStatus = code
	switch {
	case err != nil:
		run.Error = err.Error()
	case code == exitTimeout:
		run.Error = fmt.Sprintf("stopped after its timeout, %s", t.Timeout)
	case code != 0:
		run.Error = fmt.Sprintf("exit status %d", code)
	}
	if run.Error != "" && out.String() != "" {
		run.Error += "; the end of its output:\n" + lastLines(out.String(), 10)
	}
	run.OK = run.Error == ""
	if werr := writeTaskRun(l, name, run); werr != nil {
		fmt.Fprintf(stderr, "warning: task %s: record the run: %v\n", name, werr)
	}
	if err != nil {
		return 0, err
	}
	return code, nil
}

func writeTaskRun(l Layout, name string, run hostproto.TaskRun) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.taskRecords(), 0o700); err != nil {
		return err
	}
	// 0600: a command's output may hold what only root should read.
	return writeFileAtomic(l.taskRecord(name), b, 0o600)
}

// runTaskCommand runs t's command with sh -c in release id, as the
// app's user, in a process group of its own: at the timeout the whole
// group gets SIGTERM, and 10 s later the command is killed.
func runTaskCommand(ctx context.Context, l Layout, sch *hostproto.ScheduleArgs, t hostproto.Task, id string, stdout, stderr io.Writer) (int, error) {
	if id == "" {
		return 0, fmt.Errorf("%s has no current release: deploy first", l.App)
	}
	u, err := user.Lookup(l.User())
	if err != nil {
		return 0, fmt.Errorf("task %s: %w", t.Name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	env, err := l.execEnv(&hostproto.Spec{Port: sch.Port, Env: sch.Env}, id)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", t.Command)
	cmd.Dir = l.Release(id)
	cmd.Env = append(env, "HOIST_TASK="+t.Name)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		time.AfterFunc(10*time.Second, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
		return syscall.Kill(-pgid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 11 * time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return exitTimeout, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("task %s: %w", t.Name, err)
	}
	return 0, nil
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readTaskStatus reports the host's tasks: their records, and from
// systemd which runs now and when each timer fires next.
func readTaskStatus(ctx context.Context, l Layout) []hostproto.TaskStatus {
	sch, err := readSchedule(l)
	if err != nil || len(sch.Tasks) == 0 {
		return nil
	}
	next := timersNext(ctx, systemd.TaskPattern(l.App)+".timer")
	out := make([]hostproto.TaskStatus, 0, len(sch.Tasks))
	for _, t := range sch.Tasks {
		ts := hostproto.TaskStatus{Name: t.Name, Calendar: t.Calendar, Next: next[systemd.TaskTimerName(l.App, t.Name)]}
		if b, err := os.ReadFile(l.taskRecord(t.Name)); err == nil {
			var run hostproto.TaskRun
			if json.Unmarshal(b, &run) == nil {
				ts.Last = &run
			}
		}
		if u, err := systemd.Show(ctx, systemd.TaskServiceName(l.App, t.Name)); err == nil {
			ts.Running = u.ActiveState == "activating" || u.ActiveState == "active"
		}
		out = append(out, ts)
	}
	return out
}

// timersNext is when each timer matching pattern fires next.
func timersNext(ctx context.Context, pattern string) map[string]time.Time {
	next := map[string]time.Time{}
	out, err := systemd.Systemctl(ctx, "list-timers", "--all", "--output=json", pattern)
	if err != nil {
		return next
	}
	var timers []struct {
		Unit string `json:"unit"`
		Next int64  `json:"next"` // µs since the epoch
	}
	if json.Unmarshal([]byte(out), &timers) != nil {
		return next
	}
	for _, t := range timers {
		if t.Next > 0 {
			next[t.Unit] = time.UnixMicro(t.Next).UTC().Truncate(time.Second)
		}
	}
	return next
}
