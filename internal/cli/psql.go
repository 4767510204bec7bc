package cli

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/transport"
)

func newAccessoryPsqlCmd(s *streams, g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "psql NAME [PSQL-ARG...]",
		Short: "Open psql on a PostgreSQL accessory's database, as the app's role",
		Long: "psql connects to the accessory's database as the app's own role, with\n" +
			"its password, never as the superuser: it can do what the app can and no\n" +
			"more. On a terminal it is an interactive session, wired to this terminal\n" +
			"as exec -t does; otherwise psql reads stdin and writes stdout, for\n" +
			"scripts. What follows NAME is passed to psql:\n\n" +
			"  hoist accessory psql db\n" +
			"  hoist accessory psql db -c 'select count(*) from notes'\n" +
			"  hoist accessory psql db -A -t -f - < report.sql\n\n" +
			"hoist exits with psql's exit status.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccessoryPsql(cmd.Context(), s, g, args[0], args[1:])
		},
	}
	// psql's own flags (-c, -A, -t...) go to psql, not to hoist.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func runAccessoryPsql(ctx context.Context, s *streams, g *globalOptions, name string, args []string) error {
	a, err := loadApp(g, s, nil)
	if err != nil {
		return err
	}
	h, err := a.accessory(name)
	if err != nil {
		return err
	}
	if spec := a.AccessorySpec(name); spec.Service != "postgresql" {
		return usage("accessory %s is %s: psql is for postgresql accessories", name, spec.Service)
	}
	conn, err := a.Dial(ctx, h)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := a.Client(conn)
	in, ok := s.in.(*os.File)
	if ok && term.IsTerminal(int(in.Fd())) && isTerminal(s.out) {
		t, restore, err := rawTerminal(int(in.Fd()))
		if err != nil {
			return err
		}
		defer restore()
		err = c.PsqlTerminal(ctx, name, args, t, in, s.out)
		return psqlExit(err)
	}
	return psqlExit(c.Psql(ctx, name, args, s.in, s.out, s.err))
}

// psqlExit passes psql's exit status on, without a message of hoist's.
func psqlExit(err error) error {
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.Code}
	}
	return err
}
