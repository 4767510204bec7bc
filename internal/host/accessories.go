package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// The app's accessories on this host, as the accessory verbs reach
// them: by name, from the spec setup kept.

// loadAccessory reads what setup kept of accessory name.
func (l Layout) loadAccessory(name string) (*hostproto.AccessorySpec, accessory.Place, error) {
	p := l.Accessory(name)
	s, err := accessory.Load(p, name)
	return s, p, err
}

// accessoryNames lists the accessories set up for the app on this host.
func (l Layout) accessoryNames() ([]string, error) {
	ents, err := os.ReadDir(l.accessories())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list accessories: %w", err)
	}
	var names []string
	for _, e := range ents {
		if _, err := os.Stat(l.Accessory(e.Name()).SpecFile); e.IsDir() && hostproto.ValidAccessoryName(e.Name()) && err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// accessoryStatus reports accessory name, or all of them for "".
func accessoryStatus(ctx context.Context, l Layout, name string) ([]hostproto.AccessoryStatus, error) {
	names := []string{name}
	if name == "" {
		var err error
		if names, err = l.accessoryNames(); err != nil {
			return nil, err
		}
	}
	out := []hostproto.AccessoryStatus{}
	for _, n := range names {
		s, p, err := l.loadAccessory(n)
		if err != nil {
			return nil, err
		}
		st, err := accessory.ReadStatus(ctx, s, p)
		if err != nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, nil
}

// fetchBackup writes backup a.File to w.
func fetchBackup(l Layout, a hostproto.AccessoryFileArgs, w io.Writer) (int, error) {
	_, p, err := l.loadAccessory(a.Name)
	if err != nil {
		return 0, err
	}
	f, err := accessory.OpenBackup(p, a.File)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return 0, fmt.Errorf("send backup: %w", err)
	}
	return 0, nil
}

// accessoryJournal writes the journal of the accessory's unit.
func accessoryJournal(ctx context.Context, c *call, a hostproto.AccessoryLogsArgs) (int, error) {
	s, _, err := c.layout.loadAccessory(a.Name)
	if err != nil {
		return 0, err
	}
	unit, err := accessory.Unit(s)
	if err != nil {
		return 0, err
	}
	return journalctl(ctx, c, unit, a.Lines, a.Follow)
}

// journalctl writes the journal of unit (a pattern matches several).
func journalctl(ctx context.Context, c *call, unit string, lines int, follow bool) (int, error) {
	args := []string{"--unit", unit, "--lines", strconv.Itoa(lines), "--no-pager", "--output", "short-iso", "--quiet"}
	if follow {
		args = append(args, "--follow")
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("journalctl: %w", err)
	}
	return 0, nil
}
