package host

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

func TestScheduleArgsValidate(t *testing.T) {
	ok := hostproto.Task{Name: "digest", Calendar: "daily", Command: "./x", Timeout: time.Minute}
	tests := map[string]struct {
		tasks []hostproto.Task
		want  string
	}{
		"good":          {[]hostproto.Task{ok}, ""},
		"repeated name": {[]hostproto.Task{ok, ok}, "repeated task name"},
		"bad name":      {[]hostproto.Task{{Name: "../x", Calendar: "daily", Command: "x", Timeout: time.Minute}}, "invalid or repeated task name"},
		"newline":       {[]hostproto.Task{{Name: "a", Calendar: "daily\nExecStart=/bin/sh", Command: "x", Timeout: time.Minute}}, "invalid calendar"},
		"no command":    {[]hostproto.Task{{Name: "a", Calendar: "daily", Timeout: time.Minute}}, "has no command"},
		"no timeout":    {[]hostproto.Task{{Name: "a", Calendar: "daily", Command: "x"}}, "timeout"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := hostproto.ScheduleArgs{Port: 3000, Tasks: tt.tasks}
			err := a.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCalendarComplaint(t *testing.T) {
	err := errors.New("systemd-analyze calendar dayly: exit status 1: Failed to parse calendar specification 'dayly': Invalid argument")
	if got := calendarComplaint(err, ""); got != "Failed to parse calendar specification 'dayly': Invalid argument" {
		t.Errorf("complaint = %q", got)
	}
}

// A task's run is recorded for status; one whose task is gone from the
// schedule says so.
func TestTaskRecords(t *testing.T) {
	l := For(t.TempDir(), "hello")
	if _, err := runTask(t.Context(), l, "digest", nil, nil); err == nil || !strings.Contains(err.Error(), "not in hello's schedule") {
		t.Errorf("RunTask of a task not in the schedule: %v", err)
	}
	run := hostproto.TaskRun{Started: time.Date(2026, 12, 1, 7, 30, 0, 0, time.UTC), Seconds: 1.5, ExitStatus: 3, Error: "exit status 3"}
	if err := writeTaskRun(l, "digest", run); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(l.scheduleFile(), []byte(`{"port":3000,"tasks":[{"name":"digest","calendar":"daily","command":"x","timeout":60000000000}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sts := readTaskStatus(t.Context(), l)
	if len(sts) != 1 || sts[0].Name != "digest" || sts[0].Last == nil || sts[0].Last.ExitStatus != 3 || !sts[0].Last.Started.Equal(run.Started) {
		t.Errorf("readTaskStatus = %+v", sts)
	}
}
