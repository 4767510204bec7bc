package systemd

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Systemctl runs systemctl with args and returns its trimmed output; a
// failure carries systemctl's own message.
func Systemctl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "systemctl", args...)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return strings.TrimSpace(out.String()), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(out.String()), nil
}

// Unit is the state of one unit, as systemctl show reports it.
type Unit struct {
	Name        string
	ActiveState string // active, activating, failed, inactive...
	SubState    string
	Since       time.Time // when it entered its current active state
	MainPID     int
	// ExecMainStatus is the exit status of the last main process.
	ExecMainStatus int
}

// Show reads a unit's state.
func Show(ctx context.Context, name string) (Unit, error) {
	out, err := Systemctl(ctx, "show", name, "--property=ActiveState,SubState,ActiveEnterTimestamp,MainPID,ExecMainStatus", "--timestamp=unix")
	if err != nil {
		return Unit{}, err
	}
	u := Unit{Name: name}
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ActiveState":
			u.ActiveState = v
		case "SubState":
			u.SubState = v
		case "MainPID":
			fmt.Sscan(v, &u.MainPID)
		case "ExecMainStatus":
			fmt.Sscan(v, &u.ExecMainStatus)
		case "ActiveEnterTimestamp":
			var sec int64
			if _, err := fmt.Sscanf(v, "@%d", &sec); err == nil && sec > 0 {
				u.Since = time.Unix(sec, 0).UTC()
			}
		}
	}
	return u, nil
}

// ListUnits returns the names of loaded units matching pattern.
func ListUnits(ctx context.Context, pattern string) ([]string, error) {
	out, err := Systemctl(ctx, "list-units", "--all", "--plain", "--no-legend", "--no-pager", pattern)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// JournalTail returns, for error messages, the last n lines a unit's own
// processes logged, then the last few lines systemd logged about it, with
// repeats folded: systemd's own lines ("Failed to kill control group",
// restart notices) must not push the app's error out of the window.
func JournalTail(ctx context.Context, unit string, n int) string {
	args := []string{"--lines", fmt.Sprint(n), "--no-pager", "--output", "short-iso", "--quiet"}
	own, err := run(ctx, "journalctl", append(args, "_SYSTEMD_UNIT="+unit)...)
	if err != nil && own == "" {
		return "(journal unavailable: " + err.Error() + ")"
	}
	about, _ := run(ctx, "journalctl", append(args, "UNIT="+unit, "_PID=1")...)
	return joinJournal(own, foldRepeats(about, systemdLines))
}

// systemdLines is how many of systemd's lines about a unit are shown.
const systemdLines = 6

// joinJournal puts the app's lines first and systemd's after them.
func joinJournal(own, about string) string {
	switch {
	case own == "" && about == "":
		return "(nothing in the journal)"
	case about == "":
		return own
	case own == "":
		return "(the release logged nothing)\n-- systemd:\n" + about
	}
	return own + "\n-- systemd:\n" + about
}

// foldRepeats keeps the last max lines of journal output, a run of lines
// that differ only in their timestamp folded into its last with a count.
func foldRepeats(out string, max int) string {
	if out == "" {
		return ""
	}
	var lines []string
	var counts []int
	prev := ""
	for line := range strings.SplitSeq(out, "\n") {
		// short-iso: "2026-11-25T01:02:03+0000 host unit[pid]: message"
		_, msg, _ := strings.Cut(line, " ")
		if len(lines) > 0 && msg == prev {
			lines[len(lines)-1] = line
			counts[len(counts)-1]++
			continue
		}
		lines, counts, prev = append(lines, line), append(counts, 1), msg
	}
	if len(lines) > max {
		lines, counts = lines[len(lines)-max:], counts[len(counts)-max:]
	}
	for i, c := range counts {
		if c > 1 {
			lines[i] += fmt.Sprintf(" (%d times)", c)
		}
	}
	return strings.Join(lines, "\n")
}

// ExitCgroup is the status systemd gives a service it could not place in
// its control group (219/CGROUP). On cgroup v1 hosts it happens when a
// unit starts again right after stopping; the next automatic restart
// succeeds.
const ExitCgroup = 219

// Analyze runs systemd-analyze with args and returns its trimmed output.
func Analyze(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "systemd-analyze", args...)
}
