package systemd

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Task is one scheduled task of an app: a timer and the oneshot
// service it starts, which runs `hoist host task` with Request on
// stdin. hoist reads the app's environment as root there, then runs
// the task's command as the app's user in the current release.
type Task struct {
	App, Name string
	Calendar  string
	// Timeout is hoist's own bound on a run; the unit's is a little
	// longer, for hoist to stop the command and record it first.
	Timeout  time.Duration
	HoistBin string
	Request  string
	// StateDir is the app's writable directory; RecordDir is where
	// hoist records each run's outcome.
	StateDir, RecordDir string
}

// TaskServiceName and TaskTimerName are task name's units: app names
// and task names have no dot, so no other unit of hoist's is named so.
func TaskServiceName(app, name string) string { return "hoist-" + app + ".task." + name + ".service" }
func TaskTimerName(app, name string) string   { return "hoist-" + app + ".task." + name + ".timer" }

// TaskPattern matches the units of all of app's tasks.
func TaskPattern(app string) string { return "hoist-" + app + ".task.*" }

var taskService = template.Must(template.New("task").Parse(`# Written by hoist; changes are overwritten by hoist setup and deploy.
[Unit]
Description=hoist app {{.App}}: scheduled task {{.Name}}
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={{.HoistBin}} host task
StandardInput=data
StandardInputText={{.Request}}
TimeoutStartSec={{.UnitTimeout}}

# Hardening: as the app's own units, and more. hoist starts as root to
# read the app's environment, then runs the command as the app's user:
# changing users is the only privilege left to it. The command may
# write to the app's own directory; hoist to the tasks' records.
{{.Sandbox}}UMask=0027
`))

// TaskHardening is a task's sandbox: the base, writing to the app's
// directory and the tasks' records, and changing to the app's user.
func TaskHardening(t Task) Hardening {
	return Hardening{
		Writable: []string{t.StateDir, t.RecordDir},
		Relax: []Relaxation{{Directive{"CapabilityBoundingSet", "CAP_SETUID CAP_SETGID"},
			"hoist runs the task's command as the app's user"}},
	}
}

var taskTimer = template.Must(template.New("timer").Parse(`# Written by hoist; changes are overwritten by hoist setup and deploy.
[Unit]
Description=hoist app {{.App}}: scheduled task {{.Name}} ({{.Calendar}})

[Timer]
OnCalendar={{.Calendar}}
# A run missed while the host was off happens once at the next boot.
Persistent=true
AccuracySec=1s

[Install]
WantedBy=timers.target
`))

// TaskUnits renders task t's service and timer.
func TaskUnits(t Task) (service, timer []byte, err error) {
	if strings.ContainsAny(t.Calendar, "\n\r%\\") || strings.ContainsAny(t.Request, "\n\r") {
		return nil, nil, fmt.Errorf("render task %s: a calendar or request with a newline, %% or backslash", t.Name)
	}
	v := struct {
		Task
		UnitTimeout, Sandbox string
	}{t, fmt.Sprintf("%ds", int((t.Timeout+30*time.Second)/time.Second)), Sandbox(TaskHardening(t))}
	var a, b bytes.Buffer
	if err := taskService.Execute(&a, v); err != nil {
		return nil, nil, fmt.Errorf("render task %s: %w", t.Name, err)
	}
	if err := taskTimer.Execute(&b, v); err != nil {
		return nil, nil, fmt.Errorf("render task %s: %w", t.Name, err)
	}
	return a.Bytes(), b.Bytes(), nil
}
