package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// tasksFor are the scheduled tasks that run on app host h: those on all
// hosts, and on the first host those on the first.
func (a *app) tasksFor(h string) []hostproto.Task {
	tasks := []hostproto.Task{}
	for _, name := range a.Config.TaskNames() {
		t := a.Config.Schedule[name]
		if t.Hosts == config.TaskOnAll || h == a.FirstHost {
			tasks = append(tasks, hostproto.Task{Name: name, Calendar: t.Calendar, Command: t.Command, Timeout: t.Timeout.Duration})
		}
	}
	return tasks
}

// allTasks are all the schedule's tasks, for a check of their calendars.
func (a *app) allTasks() []hostproto.Task {
	tasks := []hostproto.Task{}
	for _, name := range a.Config.TaskNames() {
		t := a.Config.Schedule[name]
		tasks = append(tasks, hostproto.Task{Name: name, Calendar: t.Calendar, Command: t.Command, Timeout: t.Timeout.Duration})
	}
	return tasks
}

// installSchedule installs host h's tasks and removes the app's others
// there; it returns the tasks that run there now. A calendar the host's
// systemd cannot read is an error at its line of hoist.yml.
func (a *app) installSchedule(ctx context.Context, s *streams, g *globalOptions, c *hostclient.Client, h string, spec *hostproto.Spec) ([]string, error) {
	res, err := c.Schedule(ctx, spec, a.tasksFor(h))
	if err != nil {
		return nil, fmt.Errorf("install the schedule: %w", err)
	}
	if err := a.calendarError(g, res); err != nil {
		return nil, err
	}
	if len(res.Tasks) > 0 || len(res.Removed) > 0 {
		msg := "scheduled tasks: " + dash(strings.Join(res.Tasks, ", "))
		if len(res.Removed) > 0 {
			msg += " (removed: " + strings.Join(res.Removed, ", ") + ")"
		}
		a.logf(s, h, "%s", msg)
	}
	return res.Tasks, nil
}

// checkCalendars has the first of members that can be reached read the
// schedule's calendars, before a deploy changes anything.
func (a *app) checkCalendars(ctx context.Context, g *globalOptions, members []fleet.Member, spec *hostproto.Spec) error {
	if len(a.Config.Schedule) == 0 {
		return nil
	}
	for _, m := range members {
		if m.Err != nil {
			continue
		}
		res, err := a.Client(m.Conn).CheckSchedule(ctx, spec, a.allTasks())
		if err != nil {
			return fmt.Errorf("%s: check the schedule's calendars: %w", m.Host, err)
		}
		return a.calendarError(g, res)
	}
	return nil
}

// calendarError turns the calendars a host's systemd could not read
// into an error at the first one's line; nil when it read them all.
func (a *app) calendarError(g *globalOptions, res hostproto.ScheduleResult) error {
	if len(res.Invalid) == 0 {
		return nil
	}
	names := make([]string, 0, len(res.Invalid))
	for n := range res.Invalid {
		names = append(names, n)
	}
	sort.Strings(names)
	file := g.configPath
	if file == "" {
		file = config.FileName
	}
	n := names[0]
	e := config.Locate(file, g.destination, "schedule."+n+".calendar",
		fmt.Sprintf("%q is not a calendar systemd reads: %s", a.Config.Schedule[n].Calendar, res.Invalid[n]))
	msg := e.Error()
	if len(names) > 1 {
		msg += fmt.Sprintf(" (and the calendars of %s)", strings.Join(names[1:], ", "))
	}
	return usererr.New("%s", msg).WithHint("write it as systemd.time(7) says: daily, hourly, Mon..Fri *-*-* 09:00:00, *:0/15; `systemd-analyze calendar EXPR` on a host shows what it means")
}

// scheduleDeployed installs the schedule on the hosts a deploy
// switched (a host that did not keeps the tasks it had).
func (a *app) scheduleDeployed(ctx context.Context, s *streams, g *globalOptions, members []fleet.Member, spec *hostproto.Spec, deployed []string) error {
	var ms []fleet.Member
	for _, m := range members {
		if slices.Contains(deployed, m.Host) {
			ms = append(ms, m)
		}
	}
	results := fleet.EachMember(ctx, ms, a.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
		_, err := a.installSchedule(ctx, s, g, a.Client(conn), h, spec)
		return err
	})
	if len(a.Config.Schedule) == 0 {
		// Only tasks left from before to remove: the release is out,
		// and setup removes them too.
		for _, r := range fleet.Failed(results) {
			fmt.Fprintf(s.err, "%s %s: the scheduled tasks of before were not removed: %v\n", paint(s.err, "warning:", yellow), r.Host, r.Err)
		}
		return nil
	}
	return report(s.err, results, "schedule")
}
