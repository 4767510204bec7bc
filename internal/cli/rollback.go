package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/release"
)

type rollbackOptions struct {
	hosts []string
	json  bool
}

func newRollbackCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &rollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback [RELEASE]",
		Short: "Make an earlier release current again (default: the one before the current)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
				if !release.ValidID(id) {
					return usage("%q is not a release id; `hoist releases` lists them", id)
				}
			}
			return runRollback(cmd.Context(), s, g, o, id)
		},
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "roll back this host instead of the config's (repeatable)")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runRollback(ctx context.Context, s *streams, g *globalOptions, o *rollbackOptions, id string) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	so := a.shipOptions(s, g)
	if so.Store, err = a.storeOptions(g); err != nil {
		return err
	}
	ids, results := deploy.Rollback(ctx, so, id)
	err = report(s.err, results, "rollback")
	if !o.json {
		return err
	}
	out := releaseResults(ids, results)
	if jerr := writeJSON(s, out); jerr != nil {
		return jerr
	}
	return err
}
