package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
)

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
		res, err := a.Client(m.Conn).CheckSchedule(ctx, spec, a.AllTasks())
		if err != nil {
			return fmt.Errorf("%s: check the schedule's calendars: %w", m.Host, err)
		}
		return a.CalendarError(res)
	}
	return nil
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
		_, err := a.InstallSchedule(ctx, s.err, a.Client(conn), h, spec)
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
