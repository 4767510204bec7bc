// Package cli is hoist's command line: one file per verb, each with its
// options and a run function that takes a context and writers, so that
// tests drive the CLI in-process. Run is the only entry point.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Version and Commit are set at build time with -ldflags
// "-X ...cli.Version=v1.2.3 -X ...cli.Commit=SHA" (scripts/release.sh).
var (
	Version = "dev"
	Commit  = ""
)

// streams are the process's standard streams, passed down to every verb.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// ExitError carries an exit code through Run without printing anything,
// for `hoist exec`, which passes on the remote command's status.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// usageError marks bad flags or arguments (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode maps an error from Run to the process exit code.
func ExitCode(err error) int {
	var ee *ExitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	}
	return 1
}

// Run runs hoist with args (without the program name). It prints errors
// to stderr itself and returns them for ExitCode.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	s := &streams{in: stdin, out: stdout, err: stderr}
	g := &globalOptions{}
	root := newRoot(s, g)
	defer func() {
		if g.creds.cleanup != nil {
			g.creds.cleanup()
		}
	}()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		printError(stderr, err)
	}
	return err
}

func init() {
	// Computed when asked for: it looks for host binaries on disk.
	cobra.AddTemplateFunc("hoistVersion", versionText)
}

func newRoot(s *streams, g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:           "hoist",
		Short:         "Deploy a server app from a git commit to Linux hosts running systemd",
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "path to hoist.yml (default: ./hoist.yml)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "show builds' own output and hosts' activation logs")
	root.PersistentFlags().StringVarP(&g.destination, "destination", "d", "", "destination: lay hoist.DEST.yml over hoist.yml, with DEST's own secrets and hosts")
	root.PersistentFlags().BoolVar(&g.acceptNewHostKeys, "accept-new-host-keys", false, "trust a host never seen before without asking, and record its key (a changed key is still refused), as ssh's StrictHostKeyChecking accept-new")
	root.PersistentFlags().StringVar(&g.sshKey, "ssh-key", "", "log in with this private key (or $"+envSSHKey+" holding it), before ssh-agent and ~/.ssh's: for CI")
	root.PersistentFlags().StringVar(&g.knownHosts, "known-hosts", "", "trust only the host keys in this known_hosts file (or $"+envKnownHosts+" holding them), nothing on first use: for CI")
	root.PersistentFlags().StringVar(&g.secretsKey, "secrets-key", "", "the age key that opens hoist secrets (or $"+envAgeKey+" holding it): for CI")
	root.PersistentFlags().StringVar(&g.storeKeyFile, "store-key", "", "the key that signs the release store's records (or $"+envStoreKey+" holding it): for CI")
	root.SetVersionTemplate(`{{hoistVersion}}`)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nrun `%s --help` for usage", err, c.CommandPath())}
	})
	root.AddCommand(
		newInitCmd(s),
		newLabCmd(s),
		newSetupCmd(s, g),
		newBuildCmd(s, g),
		newDeployCmd(s, g),
		newRollbackCmd(s, g),
		newRestartCmd(s, g),
		newReleasesCmd(s, g),
		newStatusCmd(s, g),
		newLogsCmd(s, g),
		newExecCmd(s, g),
		newLockCmd(s, g),
		newSecretsCmd(s, g),
		newStoreCmd(s, g),
		newProxyCmd(s, g),
		newDNSCmd(s, g),
		newHostCmd(s),
		newPlanCmd(s, g),
		newProvisionCmd(s, g),
		newDestroyCmd(s, g),
		newAccessoryCmd(s, g),
		newAuditCmd(s, g),
		newMaintenanceCmd(s, g),
	)
	return root
}

// printError writes err, and its hint if it has one, for a person.
func printError(w io.Writer, err error) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "hoist: interrupted")
		return
	}
	fmt.Fprintf(w, "%s %s\n", paint(w, "error:", red), err)
	if h := usererr.HintOf(err); h != "" {
		fmt.Fprintf(w, "%s %s\n", paint(w, "hint:", yellow), h)
	}
}

const (
	red    = "31"
	yellow = "33"
	green  = "32"
)

// paint colours s for a terminal, unless NO_COLOR is set or w is not one.
func paint(w io.Writer, s, color string) string {
	if os.Getenv("NO_COLOR") != "" || !isTerminal(w) {
		return s
	}
	return "\x1b[" + color + "m" + s + "\x1b[0m"
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func usage(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}
