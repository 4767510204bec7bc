package config

import (
	"sort"
	"strings"
	"time"
)

// Task is a command run on a calendar, in the app's current release, as
// the app's user and with its environment (secrets and accessories'
// URLs included): a systemd timer on the hosts, whose service is
// hardened like the app's own.
type Task struct {
	// Calendar is when it runs, as systemd's OnCalendar= takes it:
	// daily, hourly, Mon..Fri *-*-* 09:00:00, *:0/15 (every quarter of
	// an hour). The hosts' systemd checks it at setup and deploy.
	Calendar string `yaml:"calendar"`
	// Command is run with sh -c in the current release directory, like
	// hooks: bin/shop digest, ./cleanup --days 30.
	Command string `yaml:"command"`
	// Hosts is where it runs: "first" (default), the first of the app's
	// hosts, or "all", each of them.
	Hosts string `yaml:"hosts"`
	// Timeout bounds one run: the command is stopped then and the run
	// counts as failed. Default 1h.
	Timeout Duration `yaml:"timeout"`
}

// Where a task runs.
const (
	TaskOnFirst = "first"
	TaskOnAll   = "all"
)

// TaskNames are the schedule's task names, sorted.
func (c *Config) TaskNames() []string {
	names := make([]string, 0, len(c.Schedule))
	for n := range c.Schedule {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (t *Task) defaults() {
	if t.Hosts == "" {
		t.Hosts = TaskOnFirst
	}
	if t.Timeout.raw == "" && t.Timeout.Duration == 0 {
		t.Timeout.Duration = time.Hour
	}
}

// validateSchedule checks what can be checked here; the calendar's
// syntax is systemd's to judge, on the hosts (setup and deploy map its
// complaint back to the calendar's line).
func (c *Config) validateSchedule() error {
	for _, name := range c.TaskNames() {
		t := c.Schedule[name]
		at := func(key string) string { return "$.schedule." + name + key }
		if !accessoryName.MatchString(name) || strings.HasSuffix(name, "-") {
			return errAt(at(""), "%q is not a task name: lowercase letters, digits and dashes, starting with a letter, at most 32", name)
		}
		if s := t.Calendar; strings.TrimSpace(s) == "" {
			return errAt(at(".calendar"), "missing; when the task runs, as systemd's OnCalendar= takes it: daily, hourly, *-*-* 03:00:00, *:0/15")
		} else if strings.ContainsAny(s, "\n\r\"'\\;%$`") {
			return errAt(at(".calendar"), "%q is not a calendar: write daily, hourly or a systemd calendar like Mon *-*-* 03:00:00", s)
		}
		if strings.TrimSpace(t.Command) == "" {
			return errAt(at(".command"), "missing; the command to run in the current release, for example `bin/shop digest`")
		}
		if t.Hosts != TaskOnFirst && t.Hosts != TaskOnAll {
			return errAt(at(".hosts"), "%q: write first (the first of the app's hosts) or all", t.Hosts)
		}
		if err := t.Timeout.parse(); err != nil {
			return errAt(at(".timeout"), "%v", err)
		}
		if t.Timeout.Duration < time.Second {
			return errAt(at(".timeout"), "must be at least 1s")
		}
		c.Schedule[name] = t
	}
	return nil
}
