package cli

import (
	"context"
	"errors"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

type execOptions struct {
	hosts []string
}

func newExecCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec [--host ADDR] -- CMD [ARG...]",
		Short: "Run a command in the current release, as the app's user, on each host",
		Long: "exec runs CMD in the current release directory with the app's\n" +
			"environment, secrets included, as the app's system user. With several\n" +
			"hosts, each output line is prefixed with its host. hoist exits with the\n" +
			"highest exit status among the hosts.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runExec(cmd.Context(), s, g, o, args) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "run on this host instead of the config's (repeatable)")
	return cmd
}

func runExec(ctx context.Context, s *streams, g *globalOptions, o *execOptions, argv []string) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	spec := deploy.Spec(a.cfg)
	var mu sync.Mutex
	worst := 0
	results := fleet.Each(ctx, a.hosts, a.cfg.SSH.Parallel, a.dial, func(ctx context.Context, h string, conn transport.Conn) error {
		out, errw := s.out, s.err
		if len(a.hosts) > 1 {
			po := &fleet.PrefixWriter{W: s.out, Prefix: h + " | ", Mu: &mu}
			pe := &fleet.PrefixWriter{W: s.err, Prefix: h + " | ", Mu: &mu}
			defer po.Flush()
			defer pe.Flush()
			out, errw = po, pe
		}
		err := a.client(conn).Exec(ctx, spec, argv, out, errw)
		var ee *transport.ExitError
		if errors.As(err, &ee) {
			mu.Lock()
			worst = max(worst, ee.Code)
			mu.Unlock()
			return nil // the command ran; its status is passed on below
		}
		return err
	})
	if err := report(s.err, results, "exec"); err != nil {
		return err
	}
	if worst != 0 {
		return &ExitError{Code: worst}
	}
	return nil
}
