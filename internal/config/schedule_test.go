package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScheduleDefaults(t *testing.T) {
	c, err := Parse("hoist.yml", []byte(valid+"schedule:\n  digest:\n    calendar: daily\n    command: bin/hello digest\n  sweep: {calendar: hourly, command: ./sweep, hosts: all, timeout: 10m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Task{
		"digest": {Calendar: "daily", Command: "bin/hello digest", Hosts: TaskOnFirst, Timeout: Duration{Duration: time.Hour}},
		"sweep":  {Calendar: "hourly", Command: "./sweep", Hosts: TaskOnAll, Timeout: Duration{Duration: 10 * time.Minute, raw: "10m"}},
	}
	if diff := cmp.Diff(want, c.Schedule, cmp.AllowUnexported(Duration{})); diff != "" {
		t.Errorf("schedule (-want +got):\n%s", diff)
	}
	if got := c.TaskNames(); !cmp.Equal(got, []string{"digest", "sweep"}) {
		t.Errorf("TaskNames = %v", got)
	}
}

func TestScheduleErrorsNamePosition(t *testing.T) {
	task := valid + "schedule:\n  digest:\n    calendar: daily\n"
	tests := map[string]struct {
		yaml string
		want string
	}{
		"bad name":         {valid + "schedule:\n  Digest: {calendar: daily, command: x}\n", `hoist.yml:10:3: schedule.Digest: "Digest" is not a task name`},
		"missing calendar": {valid + "schedule:\n  digest:\n    command: x\n", "hoist.yml:11:5: schedule.digest.calendar: missing"},
		"quote in calendar": {valid + "schedule:\n  digest:\n    calendar: \"daily'\"\n    command: x\n",
			`hoist.yml:11:15: schedule.digest.calendar: "daily'" is not a calendar`},
		"missing command": {task, "hoist.yml:11:5: schedule.digest.command: missing"},
		"bad hosts":       {task + "    command: x\n    hosts: some\n", `hoist.yml:13:12: schedule.digest.hosts: "some": write first`},
		"bad timeout":     {task + "    command: x\n    timeout: soon\n", `hoist.yml:13:14: schedule.digest.timeout: "soon" is not a duration`},
		"short timeout":   {task + "    command: x\n    timeout: 10ms\n", "hoist.yml:13:14: schedule.digest.timeout: must be at least 1s"},
		"unknown key":     {task + "    command: x\n    every: 5m\n", `unknown field "every"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("hoist.yml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A destination's schedule is laid over hoist.yml's task by task.
func TestScheduleOfADestination(t *testing.T) {
	c, err := ParseDestination("hoist.yml", []byte(valid+"schedule:\n  digest: {calendar: daily, command: x}\n"),
		"hoist.staging.yml", []byte("schedule:\n  digest: {calendar: hourly}\n  sweep: {calendar: daily, command: y}\n"), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Schedule["digest"]; d.Calendar != "hourly" || d.Command != "x" || c.Schedule["sweep"].Command != "y" {
		t.Errorf("schedule of staging = %+v", c.Schedule)
	}
}
