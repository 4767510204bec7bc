//go:build lab

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// taskStatus is a task of `hoist status --json`.
type taskStatus struct {
	Name    string `json:"name"`
	Next    string `json:"next"`
	Running bool   `json:"running"`
	Last    *struct {
		OK         bool   `json:"ok"`
		ExitStatus int    `json:"exit_status"`
		Release    string `json:"release"`
		Error      string `json:"error"`
	} `json:"last"`
}

// tasksOf reads each host's scheduled tasks from hoist status --json.
func tasksOf(t *testing.T, dir string) map[string]map[string]taskStatus {
	t.Helper()
	var sts []struct {
		Host   string `json:"host"`
		Status struct {
			Schedule []taskStatus `json:"schedule"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, dir, "status", "--json")), &sts); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]taskStatus{}
	for _, st := range sts {
		out[st.Host] = map[string]taskStatus{}
		for _, ts := range st.Status.Schedule {
			out[st.Host][ts.Name] = ts
		}
	}
	return out
}

const scheduleYML = `schedule:
  digest:
    calendar: %s
    command: 'echo "digest of $HOIST_APP in $HOIST_RELEASE as $(id -un), token $TOKEN, task $HOIST_TASK, in $(pwd -P)" > "$STATE_DIRECTORY/digest.out"; echo digest done'
  broken:
    calendar: hourly
    command: 'echo "smtp: connection refused" >&2; exit 3'
    hosts: all
  slow:
    calendar: daily
    command: 'echo started; sleep 60'
    timeout: 2s
  tick:
    calendar: "*:*:0/5"
    command: 'date >> "$STATE_DIRECTORY/ticks"'
`

// TestScheduledTasks is the proof for schedules: a calendar the
// hosts' systemd cannot read is refused at its line before anything is
// installed; tasks run in the current release as the app's user with
// its environment, on the first host or on all, started by hand or by
// their timer; a failure and a timeout show in status with their cause;
// tasks taken out of hoist.yml are removed by the next deploy.
func TestScheduledTasks(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "tasks", 3762, hosts, fmt.Sprintf(scheduleYML, "dayly"))
	units := func(h string) string {
		return strings.TrimSpace(onHost(t, h, "cd /etc/systemd/system && ls -d hoist-tasks.task.* 2>/dev/null | sort | tr '\\n' ' '"))
	}

	stderr := failHoist(t, a.dir, "setup")
	if !regexp.MustCompile(`hoist\.yml:\d+:15: schedule\.digest\.calendar: "dayly" is not a calendar systemd reads: .*dayly`).MatchString(stderr) {
		t.Errorf("setup with a bad calendar says:\n%s", stderr)
	}
	if u := units(hosts[0]); u != "" {
		t.Errorf("units installed from a schedule with a bad calendar: %s", u)
	}

	a.writeConfig(t, hosts, fmt.Sprintf(scheduleYML, `"Mon *-*-* 04:00:00"`))
	a.commit(t, "a good calendar")
	var setup []struct {
		Host     string   `json:"host"`
		Schedule []string `json:"schedule"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "setup", "--json")), &setup); err != nil || len(setup) != 2 ||
		strings.Join(setup[0].Schedule, " ") != "broken digest slow tick" || strings.Join(setup[1].Schedule, " ") != "broken" {
		t.Errorf("setup --json: %+v, %v", setup, err)
	}
	wantUnits := "hoist-tasks.task.broken.service hoist-tasks.task.broken.timer hoist-tasks.task.digest.service hoist-tasks.task.digest.timer " +
		"hoist-tasks.task.slow.service hoist-tasks.task.slow.timer hoist-tasks.task.tick.service hoist-tasks.task.tick.timer"
	if u := units(hosts[0]); u != wantUnits {
		t.Errorf("units on the first host: %s", u)
	}
	if u := units(hosts[1]); u != "hoist-tasks.task.broken.service hoist-tasks.task.broken.timer" {
		t.Errorf("units on the second host: %s", u)
	}
	mustHoist(t, a.dir, "secrets", "set", "TOKEN", "s3cret")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	// By hand, as the docs say: systemctl start returns when the run is over.
	onHost(t, hosts[0], "systemctl start hoist-tasks.task.digest.service")
	want := fmt.Sprintf("digest of tasks in %s as hoist-tasks, token s3cret, task digest, in /var/lib/hoist/tasks/releases/%s", id, id)
	if got := strings.TrimSpace(onHost(t, hosts[0], "cat /var/lib/hoist-tasks/digest.out")); got != want {
		t.Errorf("the digest wrote %q\nwant %q", got, want)
	}
	onHost(t, hosts[1], "systemctl start hoist-tasks.task.broken.service || true")
	onHost(t, hosts[0], "systemctl start hoist-tasks.task.slow.service || true")

	tasks := tasksOf(t, a.dir)
	if d := tasks[hosts[0]]["digest"]; d.Last == nil || !d.Last.OK || d.Last.ExitStatus != 0 || d.Last.Release != id || d.Next == "" {
		t.Errorf("digest in status: %+v %+v", d, d.Last)
	}
	if b := tasks[hosts[1]]["broken"]; b.Last == nil || b.Last.OK || b.Last.ExitStatus != 3 || !strings.Contains(b.Last.Error, "exit status 3") || !strings.Contains(b.Last.Error, "smtp: connection refused") {
		t.Errorf("broken in status: %+v %+v", b, b.Last)
	}
	if s := tasks[hosts[0]]["slow"]; s.Last == nil || s.Last.OK || s.Last.ExitStatus != 124 || !strings.Contains(s.Last.Error, "stopped after its timeout, 2s") {
		t.Errorf("slow in status: %+v %+v", s, s.Last)
	}
	if _, ok := tasks[hosts[1]]["digest"]; ok {
		t.Errorf("digest runs on the second host too: %+v", tasks[hosts[1]])
	}
	text := mustHoist(t, a.dir, "status")
	for _, w := range []string{"TASK", "FAILED (exit status 3)", "task broken failed at", "smtp: connection refused", "FAILED (exit status 124)"} {
		if !strings.Contains(text, w) {
			t.Errorf("status does not say %q:\n%s", w, text)
		}
	}

	// The timer fires by itself: tick runs every 5 s.
	if !waittest.PollEvery(time.Minute, time.Second, func() bool {
		tk := tasksOf(t, a.dir)[hosts[0]]["tick"]
		return tk.Last != nil && tk.Last.OK
	}) {
		t.Fatalf("tick's timer did not run it within a minute:\n%s", onHost(t, hosts[0], "systemctl status --no-pager hoist-tasks.task.tick.timer hoist-tasks.task.tick.service; journalctl --no-pager -n 20 -u hoist-tasks.task.tick.service"))
	}
	if owner := strings.TrimSpace(onHost(t, hosts[0], "stat -c %U /var/lib/hoist-tasks/ticks")); owner != "hoist-tasks" {
		t.Errorf("the tick's file belongs to %s, want the app's user", owner)
	}
	wantExposure(t, hosts[0], "hoist-tasks.task.digest.service", 2.5)

	// Taken out of hoist.yml: the next deploy removes them.
	a.writeConfig(t, hosts, "schedule:\n  digest: {calendar: daily, command: \"true\"}\n")
	a.change(t)
	mustHoist(t, a.dir, "deploy")
	if u := units(hosts[0]); u != "hoist-tasks.task.digest.service hoist-tasks.task.digest.timer" {
		t.Errorf("units on the first host after the deploy: %s", u)
	}
	if u := units(hosts[1]); u != "" {
		t.Errorf("units on the second host after the deploy: %s", u)
	}
	if got := onHost(t, hosts[0], "systemctl is-active hoist-tasks.task.tick.timer || true"); strings.TrimSpace(got) == "active" {
		t.Errorf("tick's timer still runs")
	}
}
