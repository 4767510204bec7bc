package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

const scheduleConfig = dayTwoConfig + `schedule:
  digest:
    calendar: dayly
    command: ./shop digest
  sweep:
    calendar: hourly
    command: ./shop sweep
    hosts: all
`

// A task on the first host runs on the config's first host only, even
// when --host names another; one on all hosts runs on each.
func TestTasksForHosts(t *testing.T) {
	cfg, err := config.Parse("hoist.yml", []byte(scheduleConfig))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{&deploy.App{Config: cfg, Hosts: []string{"10.0.0.2"}, FirstHost: "10.0.0.1"}}
	names := func(ts []hostproto.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	if got := names(a.TasksFor("10.0.0.1")); !cmp.Equal(got, []string{"digest", "sweep"}) {
		t.Errorf("tasks of the first host = %v", got)
	}
	if got := names(a.TasksFor("10.0.0.2")); !cmp.Equal(got, []string{"sweep"}) {
		t.Errorf("tasks of the second host = %v", got)
	}
	if got := a.TasksFor("10.0.0.1")[0]; got.Command != "./shop digest" || got.Timeout.Hours() != 1 {
		t.Errorf("digest = %+v", got)
	}
}

// A calendar the host's systemd refuses is named at its line of
// hoist.yml, with systemd's words and a hint.
func TestCalendarErrorAtItsLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hoist.yml")
	if err := os.WriteFile(file, []byte(scheduleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{&deploy.App{Config: cfg, File: file}}
	if err := a.CalendarError(hostproto.ScheduleResult{Tasks: []string{"digest"}}); err != nil {
		t.Errorf("no invalid calendar: %v", err)
	}
	err = a.CalendarError(hostproto.ScheduleResult{Invalid: map[string]string{"digest": "Failed to parse calendar specification 'dayly': Invalid argument"}})
	want := file + `:16:15: schedule.digest.calendar: "dayly" is not a calendar systemd reads: Failed to parse calendar specification 'dayly': Invalid argument`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v\nwant %q", err, want)
	}
	if h := usererr.HintOf(err); !strings.Contains(h, "systemd-analyze calendar") {
		t.Errorf("hint = %q", h)
	}
}
