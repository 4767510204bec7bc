package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
)

type restartOptions struct {
	hosts []string
	json  bool
}

func newRestartCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &restartOptions{}
	cmd := &cobra.Command{
		Use:   "restart",
		Short: "Start the current release again, with the environment as it is now",
		Long: "restart starts the current release on each host again, so that it reads\n" +
			"what changed since it started: run.env, the secrets (sent first, as deploy\n" +
			"sends them) and the accessories' URLs. Behind the edge proxy no request\n" +
			"fails: a twin of the release starts beside it and serves while it restarts.\n" +
			"Without the proxy the hosts restart one at a time, in place. A deploy of\n" +
			"the same commit does this by itself when the environment changed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRestart(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "restart on this host instead of the config's (repeatable)")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runRestart(ctx context.Context, s *streams, g *globalOptions, o *restartOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	so := a.shipOptions(s, g)
	if so.SendEnv, so.Env, err = a.secretsEnv(); err != nil {
		return err
	}
	ids, results := deploy.Restart(ctx, so)
	out := releaseResults(ids, results)
	if o.json {
		if err := writeJSON(s, out); err != nil {
			return err
		}
	} else {
		for _, r := range out {
			if r.OK {
				fmt.Fprintf(s.out, "%s: restarted %s\n", r.Host, r.Release)
			}
		}
	}
	return report(s.err, results, "restart")
}
