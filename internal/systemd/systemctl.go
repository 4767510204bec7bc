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

// JournalTail returns the last n lines of a unit's journal, for error
// messages.
func JournalTail(ctx context.Context, unit string, n int) string {
	out, err := run(ctx, "journalctl", "--unit", unit, "--lines", fmt.Sprint(n), "--no-pager", "--output", "short-iso", "--quiet")
	if err != nil && out == "" {
		return "(journal unavailable: " + err.Error() + ")"
	}
	return out
}

// ExitCgroup is the status systemd gives a service it could not place in
// its control group (219/CGROUP). On cgroup v1 hosts it happens when a
// unit starts again right after stopping; the next automatic restart
// succeeds.
const ExitCgroup = 219
