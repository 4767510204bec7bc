package cli

import (
	"context"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

type logsOptions struct {
	hosts  []string
	lines  int
	follow bool
}

func newLogsCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show the app's journal from every host, each line prefixed with its host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.lines < 0 {
				return usage("-n must be 0 or more")
			}
			return runLogs(cmd.Context(), s, g, o)
		},
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "read this host instead of the config's (repeatable)")
	cmd.Flags().IntVarP(&o.lines, "lines", "n", 50, "lines per host")
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}

func runLogs(ctx context.Context, s *streams, g *globalOptions, o *logsOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	// Every host streams at once, so a follow never waits on a slow host.
	results := fleet.Each(ctx, a.Hosts, len(a.Hosts), a.Dial, func(ctx context.Context, h string, conn transport.Conn) error {
		out := &fleet.PrefixWriter{W: s.out, Prefix: h + " | ", Mu: &mu}
		errw := &fleet.PrefixWriter{W: s.err, Prefix: h + " | ", Mu: &mu}
		defer out.Flush()
		defer errw.Flush()
		err := a.Client(conn).Logs(ctx, o.lines, o.follow, out, errw)
		if o.follow && ctx.Err() != nil {
			return nil // interrupted: the normal end of a follow
		}
		return err
	})
	return report(s.err, results, "logs")
}
