package deploy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// TasksFor are the scheduled tasks that run on app host h: those on all
// hosts, and on the first host those on the first.
func (a *App) TasksFor(h string) []hostproto.Task {
	tasks := []hostproto.Task{}
	for _, name := range a.Config.TaskNames() {
		t := a.Config.Schedule[name]
		if t.Hosts == config.TaskOnAll || h == a.FirstHost {
			tasks = append(tasks, hostproto.Task{Name: name, Calendar: t.Calendar, Command: t.Command, Timeout: t.Timeout.Duration})
		}
	}
	return tasks
}

// AllTasks are all the schedule's tasks, for a check of their calendars.
func (a *App) AllTasks() []hostproto.Task {
	tasks := []hostproto.Task{}
	for _, name := range a.Config.TaskNames() {
		t := a.Config.Schedule[name]
		tasks = append(tasks, hostproto.Task{Name: name, Calendar: t.Calendar, Command: t.Command, Timeout: t.Timeout.Duration})
	}
	return tasks
}

// InstallSchedule installs host h's tasks and removes the app's others
// there, saying so on log; it returns the tasks that run there now. A
// calendar the host's systemd cannot read is an error at its line of
// hoist.yml.
func (a *App) InstallSchedule(ctx context.Context, log io.Writer, c *hostclient.Client, h string, spec *hostproto.Spec) ([]string, error) {
	res, err := c.Schedule(ctx, spec, a.TasksFor(h))
	if err != nil {
		return nil, fmt.Errorf("install the schedule: %w", err)
	}
	if err := a.CalendarError(res); err != nil {
		return nil, err
	}
	if len(res.Tasks) > 0 || len(res.Removed) > 0 {
		tasks := strings.Join(res.Tasks, ", ")
		if tasks == "" {
			tasks = "-"
		}
		msg := "scheduled tasks: " + tasks
		if len(res.Removed) > 0 {
			msg += " (removed: " + strings.Join(res.Removed, ", ") + ")"
		}
		a.Logf(log, h, "%s", msg)
	}
	return res.Tasks, nil
}

// CalendarError turns the calendars a host's systemd could not read
// into an error at the first one's line of a.File; nil when it read
// them all.
func (a *App) CalendarError(res hostproto.ScheduleResult) error {
	if len(res.Invalid) == 0 {
		return nil
	}
	names := make([]string, 0, len(res.Invalid))
	for n := range res.Invalid {
		names = append(names, n)
	}
	sort.Strings(names)
	file := a.File
	if file == "" {
		file = config.FileName
	}
	n := names[0]
	e := config.Locate(file, a.Config.Destination, "schedule."+n+".calendar",
		fmt.Sprintf("%q is not a calendar systemd reads: %s", a.Config.Schedule[n].Calendar, res.Invalid[n]))
	msg := e.Error()
	if len(names) > 1 {
		msg += fmt.Sprintf(" (and the calendars of %s)", strings.Join(names[1:], ", "))
	}
	return usererr.New("%s", msg).WithHint("write it as systemd.time(7) says: daily, hourly, Mon..Fri *-*-* 09:00:00, *:0/15; `systemd-analyze calendar EXPR` on a host shows what it means")
}
