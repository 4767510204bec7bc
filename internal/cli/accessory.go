package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type accessoryOptions struct {
	json   bool
	lines  int
	follow bool
	fetch  bool
	to     string
	yes    bool
}

func newAccessoryCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &accessoryOptions{}
	cmd := &cobra.Command{
		Use:   "accessory",
		Short: "The app's accessories (PostgreSQL, Redis...): status, logs, restart, backup, restore",
		Long: "Accessories are declared in hoist.yml and set up by hoist setup, each on its\n" +
			"host (docs/accessories.md). These verbs reach them there.",
	}
	status := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show each accessory's state, port, data and backups",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessoryStatus(cmd.Context(), s, g, o, strings.Join(args, ""))
		},
	}
	jsonFlag(status, &o.json)
	logs := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show the journal of an accessory's unit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *host.Client, h string) error {
				err := c.AccessoryLogs(ctx, args[0], o.lines, o.follow, s.out, s.err)
				if o.follow && ctx.Err() != nil {
					return nil // interrupted: the normal end of a follow
				}
				return err
			})
		},
	}
	logs.Flags().IntVarP(&o.lines, "lines", "n", 50, "lines")
	logs.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines until interrupted")
	restart := &cobra.Command{
		Use:   "restart NAME",
		Short: "Restart an accessory and wait until it serves",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *host.Client, h string) error {
				if err := c.RestartAccessory(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(s.err, "%s: accessory %s restarted\n", h, args[0])
				return nil
			})
		},
	}
	backup := &cobra.Command{
		Use:   "backup NAME",
		Short: "Back up a PostgreSQL accessory now (--fetch: and copy the backup here)",
		Long: "backup dumps the accessory's database into a new verified backup on its\n" +
			"host and prints its name; --fetch copies it to --to (default: here) and\n" +
			"prints the local path. Old backups beyond backup.keep are removed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessoryBackup(cmd.Context(), s, g, o, args[0])
		},
	}
	backup.Flags().BoolVar(&o.fetch, "fetch", false, "copy the backup off the host, to --to")
	backup.Flags().StringVar(&o.to, "to", ".", "directory fetched backups go to")
	jsonFlag(backup, &o.json)
	backups := &cobra.Command{
		Use:   "backups NAME",
		Short: "List a PostgreSQL accessory's backups on its host, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessoryBackups(cmd.Context(), s, g, o, args[0])
		},
	}
	jsonFlag(backups, &o.json)
	fetch := &cobra.Command{
		Use:   "fetch NAME BACKUP",
		Short: "Copy a backup off the accessory's host, to --to",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *host.Client, h string) error {
				p, err := fetchBackup(ctx, c, args[0], args[1], o.to)
				if err == nil {
					fmt.Fprintln(s.out, p)
				}
				return err
			})
		},
	}
	fetch.Flags().StringVar(&o.to, "to", ".", "directory the backup goes to")
	restore := &cobra.Command{
		Use:   "restore NAME BACKUP",
		Short: "Replace a PostgreSQL accessory's database with a backup (on its host, or a local file)",
		Long: "restore verifies the whole backup first (a cut or damaged file is refused\n" +
			"before it touches the database), checks the disk has room, loads it into a\n" +
			"scratch database and only then puts it in the database's place. BACKUP is\n" +
			"a backup on the host (hoist accessory backups lists them) or a local file,\n" +
			"which is uploaded first. A database that holds data is replaced only when\n" +
			"confirmed (--yes, or typing its name on a terminal); a backup of it is made\n" +
			"first.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessoryRestore(cmd.Context(), s, g, o, args[0], args[1])
		},
	}
	restore.Flags().BoolVar(&o.yes, "yes", false, "replace a database that holds data without asking")
	cmd.AddCommand(status, logs, restart, backup, backups, fetch, restore)
	return cmd
}

// jsonFlag adds --json to a verb that prints a result.
func jsonFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "json", false, "print JSON (docs/json.md describes it)")
}

// onAccessory runs fn on the host of accessory name.
func onAccessory(ctx context.Context, s *streams, g *globalOptions, name string, fn func(ctx context.Context, c *host.Client, h string) error) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	h, err := a.accessory(name)
	if err != nil {
		return err
	}
	results := fleet.Each(ctx, []string{h}, 1, a.dial, func(ctx context.Context, h string, conn transport.Conn) error {
		return fn(ctx, a.client(conn), h)
	})
	return report(s.err, results, "accessory "+name)
}

// accessoryStatus is one line of `hoist accessory status --json`.
type accessoryStatus struct {
	Host      string            `json:"host"`
	Name      string            `json:"name"`
	Accessory *accessory.Status `json:"accessory,omitempty"`
	Error     string            `json:"error,omitempty"`
}

func runAccessoryStatus(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	names := a.cfg.AccessoryNames()
	if name != "" {
		if _, err := a.accessory(name); err != nil {
			return err
		}
		names = []string{name}
	}
	var hosts []string
	for _, n := range names {
		hosts = append(hosts, a.accessoryHost(n))
	}
	hosts = unique(hosts)
	sts, results := fleet.Map(ctx, hosts, a.cfg.SSH.Parallel, a.dial, func(ctx context.Context, _ string, conn transport.Conn) ([]accessory.Status, error) {
		return a.client(conn).AccessoryStatus(ctx, "")
	})
	out := []accessoryStatus{}
	for _, n := range names {
		h := a.accessoryHost(n)
		line := accessoryStatus{Host: h, Name: n, Error: "not set up: run hoist setup"}
		for i, r := range results {
			if r.Host != h {
				continue
			}
			if r.Err != nil {
				line.Error = r.Err.Error()
			}
			for _, st := range sts[i] {
				if st.Name == n {
					line.Accessory, line.Error = &st, ""
				}
			}
		}
		out = append(out, line)
	}
	if o.json {
		return writeJSON(s, out)
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "HOST\tACCESSORY\tSERVICE\tSTATE\tLISTEN\tBACKUPS\tLAST BACKUP\tNEXT BACKUP")
	for _, l := range out {
		if l.Accessory == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\n", l.Host, l.Name, l.Error)
			continue
		}
		st := l.Accessory
		last, next := "-", "-"
		if st.LastBackup != nil {
			last = st.LastBackup.Created.Local().Format("2006-01-02 15:04") + " (" + st.LastBackup.File + ")"
		}
		if !st.NextBackup.IsZero() {
			next = st.NextBackup.Local().Format("2006-01-02 15:04")
		}
		service := st.Service
		if st.Version != "" {
			service += " " + st.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%d\t%d\t%s\t%s\n", l.Host, l.Name, service, st.State, st.Listen, st.Port, st.Backups, last, next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return report(s.err, results, "accessory status")
}

// backupResult is what `hoist accessory backup --json` prints.
type backupResult struct {
	Host string `json:"host"`
	accessory.BackupInfo
	// Local is where --fetch put it.
	Local string `json:"local,omitempty"`
}

func runAccessoryBackup(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	var res backupResult
	err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *host.Client, h string) error {
		bi, err := c.BackupAccessory(ctx, name)
		if err != nil {
			return err
		}
		res = backupResult{Host: h, BackupInfo: bi}
		fmt.Fprintf(s.err, "%s: backed up %s to %s (%s)\n", h, name, bi.File, bytesize.String(bi.Size))
		if o.fetch {
			res.Local, err = fetchBackup(ctx, c, name, bi.File, o.to)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case o.json:
		return writeJSON(s, res)
	case res.Local != "":
		fmt.Fprintln(s.out, res.Local)
	default:
		fmt.Fprintln(s.out, res.File)
	}
	return nil
}

// fetchBackup copies backup file of accessory name into dir, atomically,
// and verifies it; it returns the local path.
func fetchBackup(ctx context.Context, c *host.Client, name, file, dir string) (string, error) {
	if !accessory.ValidBackupFile(file) {
		return "", usage("%q is not a backup's name; hoist accessory backups %s lists them", file, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	path := filepath.Join(dir, file)
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Abort()
	var stderr strings.Builder
	if err := c.FetchBackup(ctx, name, file, f, &stderr); err != nil {
		return "", fmt.Errorf("fetch %s: %w: %s", file, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if _, _, err := accessory.Verify(f, file); err != nil {
		return "", err
	}
	return path, f.Commit()
}

// hostBackups is one accessory's line of `hoist accessory backups --json`.
type hostBackups struct {
	Host    string                 `json:"host"`
	Name    string                 `json:"name"`
	Backups []accessory.BackupInfo `json:"backups"`
}

func runAccessoryBackups(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	out := hostBackups{Name: name, Backups: []accessory.BackupInfo{}}
	err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *host.Client, h string) error {
		bs, err := c.AccessoryBackups(ctx, name)
		out.Host, out.Backups = h, bs
		return err
	})
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(s, out)
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "BACKUP\tMADE\tSIZE")
	for _, b := range out.Backups {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", b.File, localTime(b.Created), bytesize.String(b.Size))
	}
	return tw.Flush()
}

func runAccessoryRestore(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name, backup string) error {
	local := ""
	if fi, err := os.Stat(backup); err == nil && fi.Mode().IsRegular() {
		local = backup
		if _, _, err := accessory.VerifyFile(local); err != nil {
			return err // refused here, before anything is sent
		}
	} else if !accessory.ValidBackupFile(backup) {
		return usage("%q is neither a local file nor a backup's name; hoist accessory backups %s lists them", backup, name)
	}
	return onAccessory(ctx, s, g, name, func(ctx context.Context, c *host.Client, h string) error {
		file := backup
		if local != "" {
			bi, err := sendBackup(ctx, c, name, local)
			if err != nil {
				return err
			}
			file = bi.File
			fmt.Fprintf(s.err, "%s: sent %s\n", h, local)
		}
		err := c.RestoreAccessory(ctx, name, file, o.yes)
		var ce *accessory.ConfirmError
		if errors.As(err, &ce) && !o.yes {
			question := fmt.Sprintf("%s on %s is not empty (%d tables, views or sequences); type its name to replace it with %s: ", ce.Database, h, ce.Tables, file)
			if !interactive(s) {
				return usererr.New("not restored: %s on %s is not empty, and was left as it is", ce.Database, h).
					WithHint("pass --yes to replace it (a backup of it is made first)")
			}
			if _, ok, _ := askTyped(s, question, ce.Database); !ok {
				return usererr.New("not restored: %s was left as it is", ce.Database).
					WithHint("pass --yes to replace a database that holds data (a backup of it is made first)")
			}
			err = c.RestoreAccessory(ctx, name, file, true)
		}
		if err == nil {
			fmt.Fprintf(s.err, "%s: %s restored from %s\n", h, name, file)
		}
		return err
	})
}

// interactive reports whether a person can answer a question: stdin and
// stderr are terminals.
func interactive(s *streams) bool {
	f, ok := s.in.(*os.File)
	return ok && isTerminal(f) && isTerminal(s.err)
}

// sendBackup uploads a local backup to the accessory's host.
func sendBackup(ctx context.Context, c *host.Client, name, local string) (accessory.BackupInfo, error) {
	f, err := os.Open(local)
	if err != nil {
		return accessory.BackupInfo{}, fmt.Errorf("send backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return accessory.BackupInfo{}, fmt.Errorf("send backup: %w", err)
	}
	file := filepath.Base(local)
	if !accessory.ValidBackupFile(file) {
		file = name + "-uploaded-" + time.Now().UTC().Format("20060102T150405Z") + accessory.BackupExt
	}
	return c.SendBackup(ctx, name, file, fi.Size(), f)
}
