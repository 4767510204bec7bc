package cli

import (
	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/platform"
)

// newHostCmd is `hoist host VERB`, what the client runs on hosts over SSH
// and the boot unit runs at start-up. It is hidden from help because
// people do not type it; internal/host defines and serves its verbs.
func newHostCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:                "host VERB",
		Short:              "Commands hoist runs on a host over SSH",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := platform.Check(platform.HostRole); err != nil {
				return err
			}
			if code := host.Main(cmd.Context(), args, s.in, s.out, s.err); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}
