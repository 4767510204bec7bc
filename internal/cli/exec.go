package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

type execOptions struct {
	hosts []string
	tty   bool
}

func newExecCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec [--host ADDR] [-t] -- CMD [ARG...]",
		Short: "Run a command in the current release, as the app's user, on each host",
		Long: "exec runs CMD in the current release directory with the app's\n" +
			"environment, secrets included, as the app's system user. With several\n" +
			"hosts, each output line is prefixed with its host. hoist exits with the\n" +
			"highest exit status among the hosts.\n\n" +
			"With -t, CMD runs on a terminal of one host, wired to this terminal, as\n" +
			"ssh -t does: for bin/APP remote, or a shell.\n\n" +
			"A scheduled task (hoist.yml's schedule) runs by hand the way its timer\n" +
			"runs it, with its output here: hoist exec --host HOST -- sh -c 'COMMAND'.\n" +
			"On the host, systemctl start hoist-APP.task.NAME.service runs it and\n" +
			"records the run for hoist status (docs/schedules.md).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.tty {
				return runExecTerminal(cmd.Context(), s, g, o, args)
			}
			return runExec(cmd.Context(), s, g, o, args)
		},
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "run on this host instead of the config's (repeatable)")
	cmd.Flags().BoolVarP(&o.tty, "tty", "t", false, "run CMD on a terminal of the host, wired to this one (one host)")
	return cmd
}

func runExec(ctx context.Context, s *streams, g *globalOptions, o *execOptions, argv []string) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	res := deploy.Exec(ctx, a.App, deploy.ExecOptions{Argv: argv, Stdout: s.out, Stderr: s.err})
	results := make([]fleet.Result, len(res))
	worst := 0
	for i, r := range res {
		results[i] = fleet.Result{Host: r.Host, Err: r.Err}
		worst = max(worst, r.Code)
	}
	if err := report(s.err, results, "exec"); err != nil {
		return err
	}
	if worst != 0 {
		return &ExitError{Code: worst}
	}
	return nil
}

// runExecTerminal runs argv on a terminal of the one host, with this
// terminal in raw mode so that every key (^C included) reaches the
// command, and its size following this one's.
func runExecTerminal(ctx context.Context, s *streams, g *globalOptions, o *execOptions, argv []string) error {
	in, ok := s.in.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return usage("-t needs a terminal on stdin; without -t, exec runs CMD without one")
	}
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	if len(a.Hosts) != 1 {
		return usage("-t runs CMD on one host; name it with --host")
	}
	conn, err := a.Dial(ctx, a.Hosts[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	t, restore, err := rawTerminal(int(in.Fd()))
	if err != nil {
		return err
	}
	defer restore()
	err = a.Client(conn).ExecTerminal(ctx, deploy.Spec(a.Config), argv, t, in, s.out)
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.Code}
	}
	return err
}

// rawTerminal puts the terminal fd in raw mode for a remote one, and
// describes it, following its size, until restore.
func rawTerminal(fd int) (transport.Terminal, func(), error) {
	t, stop := terminalOf(fd)
	old, err := term.MakeRaw(fd)
	if err != nil {
		stop()
		return t, nil, err
	}
	return t, func() { term.Restore(fd, old); stop() }, nil
}

// terminalOf describes the terminal fd, and follows its size until stop.
func terminalOf(fd int) (transport.Terminal, func()) {
	t := transport.Terminal{Term: os.Getenv("TERM"), Size: transport.Size{Width: 80, Height: 24}}
	if t.Term == "" {
		t.Term = "xterm"
	}
	size := func() transport.Size {
		if w, h, err := term.GetSize(fd); err == nil {
			return transport.Size{Width: w, Height: h}
		}
		return t.Size
	}
	t.Size = size()
	winch := make(chan os.Signal, 1)
	resize := make(chan transport.Size, 1)
	t.Resize = resize
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				select {
				case <-resize: // not sent yet: the latest replaces it
				default:
				}
				resize <- size()
			case <-done:
				return
			}
		}
	}()
	return t, func() { signal.Stop(winch); close(done) }
}
