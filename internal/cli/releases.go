package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
)

type releasesOptions struct {
	hosts []string
	json  bool
}

func newReleasesCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &releasesOptions{}
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "List the releases on each host, the current one marked",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runReleases(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "ask this host instead of the config's (repeatable)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// hostReleases is one host's line of `hoist releases`.
type hostReleases struct {
	Host     string                  `json:"host"`
	Releases []hostproto.ReleaseInfo `json:"releases"`
	Error    string                  `json:"error,omitempty"`
}

func runReleases(ctx context.Context, s *streams, g *globalOptions, o *releasesOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	rss, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.ReleaseInfo, error) {
		return a.Client(conn).Releases(ctx)
	})
	out := make([]hostReleases, len(results))
	for i, r := range results {
		out[i] = hostReleases{Host: r.Host, Releases: rss[i], Error: errText(r.Err)}
		if out[i].Releases == nil {
			out[i].Releases = []hostproto.ReleaseInfo{}
		}
	}
	if o.json {
		return writeJSON(s, sliceOut(out, hostReleasesOut))
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "HOST\tRELEASE\tCOMMIT\tBUILT\tSTATE")
	for _, hr := range out {
		for _, r := range hr.Releases {
			commit := r.Commit
			if len(commit) > 12 {
				commit = commit[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", hr.Host, r.ID, dash(commit), localTime(r.BuiltAt), releaseState(r))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return report(s.err, results, "releases")
}

// releaseState says whether a release serves, or failed and why.
func releaseState(r hostproto.ReleaseInfo) string {
	switch {
	case r.Current:
		return "current"
	case r.Failed:
		reason := r.FailReason
		if len(reason) > 60 {
			reason = reason[:57] + "..."
		}
		return "failed: " + reason
	}
	return ""
}
