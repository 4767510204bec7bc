package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type accessoryOptions struct {
	json     bool
	lines    int
	follow   bool
	fetch    bool
	to       string
	yes      bool
	verify   bool
	foreign  bool
	identity string
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
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *hostclient.Client, h string) error {
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
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *hostclient.Client, h string) error {
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
			return onAccessory(cmd.Context(), s, g, args[0], func(ctx context.Context, c *hostclient.Client, h string) error {
				fetch := fetchBackup
				if strings.HasSuffix(args[1], hostproto.OffsiteExt) {
					fetch = func(ctx context.Context, c *hostclient.Client, name, file, dir string) (string, error) {
						return fetchOffsite(ctx, c, name, file, dir, o.identity)
					}
				}
				p, err := fetch(ctx, c, args[0], args[1], o.to)
				if err == nil {
					fmt.Fprintln(s.out, p)
				}
				return err
			})
		},
	}
	fetch.Flags().StringVar(&o.to, "to", ".", "directory the backup goes to")
	fetch.Flags().StringVar(&o.identity, "identity", "", "age identity file that opens an off-host backup (FILE.age)")
	restore := &cobra.Command{
		Use:   "restore NAME [BACKUP]",
		Short: "Replace a PostgreSQL accessory's database with a backup (on its host, or a local file)",
		Long: "restore verifies the whole backup first (a cut or damaged file is refused\n" +
			"before it touches the database), checks the disk has room, loads it into a\n" +
			"scratch database and only then puts it in the database's place. BACKUP is\n" +
			"a backup on the host (hoist accessory backups lists them) or a local file,\n" +
			"which is uploaded first. A database that holds data is replaced only when\n" +
			"confirmed (--yes, or typing its name on a terminal); a backup of it is made\n" +
			"first. The backup's SQL runs as the app's role, never as a superuser.\n\n" +
			"--verify restores BACKUP (default: the newest) into a scratch database\n" +
			"instead, compares each table's rows with the counts recorded when it was\n" +
			"dumped, and records the result: a backup counts as good once verified.\n" +
			"--foreign takes an ordinary pg_dump (plain SQL, gzipped or not, or -Fc)\n" +
			"that hoist did not make, under the same rules.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			backup := ""
			if len(args) == 2 {
				backup = args[1]
			}
			if o.verify {
				if o.foreign {
					return usage("--verify and --foreign go apart: restore --foreign a dump, then --verify the upload")
				}
				return runAccessoryVerify(cmd.Context(), s, g, o, args[0], backup)
			}
			if backup == "" {
				return usage("which backup? hoist accessory backups %s lists them", args[0])
			}
			return runAccessoryRestore(cmd.Context(), s, g, o, args[0], backup)
		},
	}
	restore.Flags().BoolVar(&o.yes, "yes", false, "replace a database that holds data without asking")
	restore.Flags().BoolVar(&o.verify, "verify", false, "restore into a scratch database and compare row counts; the app's database is not touched")
	restore.Flags().BoolVar(&o.foreign, "foreign", false, "BACKUP is an ordinary pg_dump file (plain or custom format), not made by hoist")
	restore.Flags().StringVar(&o.identity, "identity", "", "age identity file that opens an off-host backup (BACKUP.age, from the bucket)")
	jsonFlag(restore, &o.json)
	cmd.AddCommand(status, logs, restart, backup, backups, fetch, restore, newAccessoryPsqlCmd(s, g), newAccessoryPullCmd(s, g))
	return cmd
}

// jsonFlag adds --json to a verb that prints a result.
func jsonFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "json", false, "print JSON (docs/json.md describes it)")
}

// onAccessory runs fn on the host of accessory name.
func onAccessory(ctx context.Context, s *streams, g *globalOptions, name string, fn func(ctx context.Context, c *hostclient.Client, h string) error) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	h, err := a.accessory(name)
	if err != nil {
		return err
	}
	results := fleet.Each(ctx, []string{h}, 1, a.Dial, func(ctx context.Context, h string, conn transport.Conn) error {
		return fn(ctx, a.Client(conn), h)
	})
	return report(s.err, results, "accessory "+name)
}

// accessoryStatus is one line of `hoist accessory status`.
type accessoryStatus struct {
	Host      string                     `json:"host"`
	Name      string                     `json:"name"`
	Accessory *hostproto.AccessoryStatus `json:"accessory,omitempty"`
	Error     string                     `json:"error,omitempty"`
}

func runAccessoryStatus(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	names := a.Config.AccessoryNames()
	if name != "" {
		if _, err := a.accessory(name); err != nil {
			return err
		}
		names = []string{name}
	}
	var hosts []string
	for _, n := range names {
		hosts = append(hosts, a.AccessoryHost(n))
	}
	hosts = unique(hosts)
	sts, results := fleet.Map(ctx, hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.AccessoryStatus, error) {
		return a.Client(conn).AccessoryStatus(ctx, "")
	})
	out := []accessoryStatus{}
	for _, n := range names {
		h := a.AccessoryHost(n)
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
		return writeJSON(s, sliceOut(out, accessoryStatusOut))
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
			last = localTime(st.LastBackup.Created) + " (" + howLong(time.Since(st.LastBackup.Created)) + " ago, " + st.LastBackup.File
			if !st.LastBackup.Verified.IsZero() {
				last += ", verified"
			}
			last += ")"
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
	for _, l := range out {
		if st := l.Accessory; st != nil {
			if f := st.LastFailure; f != nil {
				fmt.Fprintf(s.out, "%s: last failed backup: %s (%s ago): %s\n", l.Name, localTime(f.At), howLong(time.Since(f.At)), f.Error)
			}
			if o := st.LastOffsite; o != nil && o.Error != "" {
				fmt.Fprintf(s.out, "%s: last copy off the host failed: %s (%s ago): %s\n", l.Name, localTime(o.At), howLong(time.Since(o.At)), o.Error)
			}
			if v := st.LastVerify; v != nil {
				result := "ok"
				if !v.OK {
					result = "FAILED: " + v.Detail
				}
				fmt.Fprintf(s.out, "%s: last verify: %s of %s, %d tables: %s\n", l.Name, localTime(v.At), v.File, v.Tables, result)
			}
			if st.BackupWarning != "" {
				fmt.Fprintf(s.err, "%s: warning: accessory %s: %s\n", l.Host, l.Name, st.BackupWarning)
			}
		}
	}
	return report(s.err, results, "accessory status")
}

// howLong says a duration the way people do: 45s, 12m, 3h, 2d.
func howLong(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// backupResult is what `hoist accessory backup` made.
type backupResult struct {
	Host string `json:"host"`
	hostproto.BackupInfo
	// Local is where --fetch put it.
	Local string `json:"local,omitempty"`
}

func runAccessoryBackup(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	var res backupResult
	err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
		bi, err := c.BackupAccessory(ctx, name)
		if err != nil {
			return err
		}
		res = backupResult{Host: h, BackupInfo: bi}
		fmt.Fprintf(s.err, "%s: backed up %s to %s (%s)\n", h, name, bi.File, bytesize.String(bi.Size))
		if bi.OffsiteError != "" {
			fmt.Fprintf(s.err, "%s: warning: the backup stands on the host, but its copy off the host failed: %s\n", h, bi.OffsiteError)
		}
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
		return writeJSON(s, backupResultOut(res))
	case res.Local != "":
		fmt.Fprintln(s.out, res.Local)
	default:
		fmt.Fprintln(s.out, res.File)
	}
	return nil
}

// fetchBackup copies backup file of accessory name into dir, atomically,
// and verifies it; it returns the local path.
func fetchBackup(ctx context.Context, c *hostclient.Client, name, file, dir string) (string, error) {
	if !hostproto.ValidBackupFile(file) {
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

// hostBackups is one accessory's backups, for `hoist accessory backups`.
type hostBackups struct {
	Host    string                 `json:"host"`
	Name    string                 `json:"name"`
	Backups []hostproto.BackupInfo `json:"backups"`
	// Offsite are the backups in the accessory's bucket
	// (backup.offsite), encrypted; absent without one.
	Offsite []hostproto.BackupInfo `json:"offsite,omitempty"`
	// OffsiteError says why the bucket could not be listed.
	OffsiteError string `json:"offsite_error,omitempty"`
}

func runAccessoryBackups(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name string) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	offsite := a.Config.Accessories[name].Backup.Offsite != nil
	out := hostBackups{Name: name, Backups: []hostproto.BackupInfo{}}
	err = onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
		bs, err := c.AccessoryBackups(ctx, name)
		out.Host, out.Backups = h, bs
		if err != nil {
			return err
		}
		if offsite {
			if out.Offsite, err = c.OffsiteBackups(ctx, name); err != nil {
				out.OffsiteError = err.Error()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(s, hostBackupsOut(out))
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "BACKUP\tKIND\tMADE\tSIZE\tVERIFIED")
	for _, b := range append(slices.Clone(out.Backups), out.Offsite...) {
		verified := "-"
		if !b.Verified.IsZero() {
			verified = localTime(b.Verified)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.File, b.Kind, localTime(b.Created), bytesize.String(b.Size), verified)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.OffsiteError != "" {
		fmt.Fprintf(s.err, "%s: warning: the bucket of accessory %s cannot be listed: %s\n", out.Host, name, out.OffsiteError)
	}
	return nil
}

// fetchOffsite copies object file of the accessory's bucket through its
// host, decrypts it here with the operator's age identity, and keeps
// it in dir once whole and verified; it returns the local path.
func fetchOffsite(ctx context.Context, c *hostclient.Client, name, file, dir, identity string) (string, error) {
	if identity == "" {
		return "", usage("%s is encrypted: give the age identity that opens it, --identity FILE", file)
	}
	ids, err := readIdentities(identity)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	plain := strings.TrimSuffix(file, hostproto.OffsiteExt)
	path := filepath.Join(dir, plain)
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Abort()
	enc, err := os.CreateTemp(dir, ".offsite-*")
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	defer os.Remove(enc.Name())
	defer enc.Close()
	var stderr strings.Builder
	if err := c.FetchOffsite(ctx, name, file, enc, &stderr); err != nil {
		return "", fmt.Errorf("fetch %s: %w: %s", file, err, strings.TrimSpace(stderr.String()))
	}
	if _, err := enc.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	r, err := age.Decrypt(enc, ids...)
	if err != nil {
		return "", usererr.New("%s cannot be decrypted with %s: %v", file, identity, err).
			WithHint("give the identity whose public key is backup.offsite.recipient")
	}
	if _, err := io.Copy(f, r); err != nil {
		return "", usererr.New("%s is damaged: %v", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if _, _, err := accessory.Verify(f, plain); err != nil {
		return "", err
	}
	return path, f.Commit()
}

// readIdentities reads an age identity file.
func readIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usererr.Wrap(err, "--identity")
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, usererr.New("--identity %s: %v", path, err).WithHint("give a file age-keygen wrote")
	}
	return ids, nil
}

func runAccessoryRestore(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name, backup string) error {
	local := ""
	if fi, err := os.Stat(backup); err == nil && fi.Mode().IsRegular() {
		local = backup
		if o.foreign {
			// The host reads it, and refuses a dump that is not whole.
		} else if _, _, err := accessory.VerifyFile(local); err != nil {
			return err // refused here, before anything is sent
		}
	} else if o.foreign {
		return usage("--foreign takes a local file: %q is none", backup)
	} else if strings.HasSuffix(backup, hostproto.OffsiteExt) {
		// From the bucket: fetched and decrypted here, then sent.
		if err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
			dir, err := os.MkdirTemp("", "hoist-restore-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path, err := fetchOffsite(ctx, c, name, backup, dir, o.identity)
			if err != nil {
				return err
			}
			bi, err := sendBackup(ctx, c, name, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.err, "%s: %s fetched from the bucket, decrypted here and sent as %s\n", h, backup, bi.File)
			backup = bi.File
			return nil
		}); err != nil {
			return err
		}
	} else if !hostproto.ValidBackupFile(backup) {
		return usage("%q is neither a local file nor a backup's name; hoist accessory backups %s lists them", backup, name)
	}
	var res restoreResult
	err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
		file := backup
		if local != "" {
			send := sendBackup
			if o.foreign {
				send = sendDump
			}
			bi, err := send(ctx, c, name, local)
			if err != nil {
				return err
			}
			file = bi.File
			fmt.Fprintf(s.err, "%s: sent %s\n", h, local)
		}
		before, err := c.RestoreAccessory(ctx, name, file, o.yes)
		var ce *hostproto.ConfirmError
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
			before, err = c.RestoreAccessory(ctx, name, file, true)
		}
		if err == nil {
			fmt.Fprintf(s.err, "%s: %s restored from %s\n", h, name, file)
			res = restoreResult{Host: h, Name: name, File: file, Before: before}
		}
		return err
	})
	if err == nil && o.json {
		return writeJSON(s, res)
	}
	return err
}

// verifyResult is what `hoist accessory restore --verify` found.
type verifyResult struct {
	Host string `json:"host"`
	Name string `json:"name"`
	hostproto.Verification
}

func runAccessoryVerify(ctx context.Context, s *streams, g *globalOptions, o *accessoryOptions, name, backup string) error {
	local := ""
	if fi, err := os.Stat(backup); backup != "" && err == nil && fi.Mode().IsRegular() {
		local = backup
		if _, _, err := accessory.VerifyFile(local); err != nil {
			return err
		}
	} else if backup != "" && !hostproto.ValidBackupFile(backup) {
		return usage("%q is neither a local file nor a backup's name; hoist accessory backups %s lists them", backup, name)
	}
	var res verifyResult
	err := onAccessory(ctx, s, g, name, func(ctx context.Context, c *hostclient.Client, h string) error {
		file := backup
		if local != "" {
			bi, err := sendBackup(ctx, c, name, local)
			if err != nil {
				return err
			}
			file = bi.File
			fmt.Fprintf(s.err, "%s: sent %s as %s\n", h, local, file)
		}
		v, err := c.VerifyBackup(ctx, name, file)
		res = verifyResult{Host: h, Name: name, Verification: v}
		return err
	})
	if err != nil {
		return err
	}
	if o.json {
		if err := writeJSON(s, verifyResultOut(res)); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(s.out, "%s: %s is good: restored into a scratch database, %d tables with the rows dumped\n", res.Host, res.File, res.Tables)
	}
	if !res.OK {
		return usererr.New("backup %s of accessory %s failed its verify drill: %s", res.File, name, res.Detail).
			WithHint("the backup cannot be trusted; make a new one (hoist accessory backup %s) and verify it", name)
	}
	return nil
}

// interactive reports whether a person can answer a question: stdin and
// stderr are terminals.
func interactive(s *streams) bool {
	f, ok := s.in.(*os.File)
	return ok && isTerminal(f) && isTerminal(s.err)
}

// sendDump uploads an ordinary pg_dump to the accessory's host, which
// keeps it as an upload that restores like a backup.
func sendDump(ctx context.Context, c *hostclient.Client, name, local string) (hostproto.BackupInfo, error) {
	f, err := os.Open(local)
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("send dump: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("send dump: %w", err)
	}
	return c.ImportDump(ctx, name, filepath.Base(local), fi.Size(), f)
}

// sendBackup uploads a local backup to the accessory's host.
func sendBackup(ctx context.Context, c *hostclient.Client, name, local string) (hostproto.BackupInfo, error) {
	f, err := os.Open(local)
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("send backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return hostproto.BackupInfo{}, fmt.Errorf("send backup: %w", err)
	}
	file := filepath.Base(local)
	if !hostproto.ValidBackupFile(file) {
		file = name + "-uploaded-" + time.Now().UTC().Format("20060102T150405Z") + hostproto.BackupExt
	}
	return c.SendBackup(ctx, name, file, fi.Size(), f)
}
