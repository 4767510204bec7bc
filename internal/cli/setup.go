package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
)

type setupOptions struct {
	hosts []string
	// binaries are --hoist-binary's: host binaries of any platforms.
	binaries []string
	adopt    bool
	json     bool
}

func newSetupCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &setupOptions{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare hosts: install hoist, the app's user, directories and units",
		Long: "setup is safe to run again: it changes only what differs. It puts hoist\n" +
			"on each host, built for the host's platform (it runs there in its host\n" +
			"role), creates the app's system user and " + host.DefaultBase + "/APP, and installs\n" +
			"its systemd units. hoist travels compressed, leaves this machine once for\n" +
			"all the hosts of a platform, and skips hosts that have this build.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSetup(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	hoistBinaryFlag(cmd, &o.binaries)
	cmd.Flags().BoolVar(&o.adopt, "adopt", false, "with -d: take hosts set up for no destination (hoist.yml alone) into this destination")
	jsonFlag(cmd, &o.json)
	return cmd
}

// setupResult is one host's entry of `hoist setup`'s results.
type setupResult struct {
	Host string `json:"host"`
	OK   bool   `json:"ok"`
	// App says the app itself was set up there, not only accessories.
	App bool `json:"app"`
	// Installed says this setup put hoist on the host (it had none, or
	// other bytes).
	Installed bool `json:"installed"`
	// Facts are what the host can run, as setup recorded them.
	Facts *hostproto.HostFacts `json:"facts,omitempty"`
	// Accessories are the accessories set up on the host.
	Accessories []string `json:"accessories"`
	// Schedule are the scheduled tasks whose timers run on the host.
	Schedule []string `json:"schedule"`
	Error    string   `json:"error,omitempty"`
}

// setupResultOf is the entry of a host's result.
func setupResultOf(r deploy.SetupResult) setupResult {
	e := setupResult{Host: r.Host, OK: r.Err == nil, App: r.App, Installed: r.Installed, Facts: r.Facts,
		Accessories: r.Accessories, Schedule: r.Schedule}
	if r.Err != nil {
		e.Error = r.Err.Error()
	}
	return e
}

func runSetup(ctx context.Context, s *streams, g *globalOptions, o *setupOptions) error {
	if o.adopt && g.destination == "" {
		return usage("--adopt takes hosts into a destination: name it with -d")
	}
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	a.Adopt = o.adopt
	results, err := deploy.Setup(ctx, a.App, deploy.SetupOptions{
		Log:    s.err,
		Finder: hostFinder(&lockedWriter{w: s.err, mu: a.LogMu}, o.binaries), CacheDir: cacheDir(),
		Named: len(o.hosts) > 0, Verbose: g.verbose,
	})
	if he := (*deploy.HostsError)(nil); errors.As(err, &he) {
		err = report(s.err, he.Results, he.Verb)
	}
	// The hosts' results for --json, whatever happened, once setup
	// reached them.
	if o.json && results != nil {
		if jerr := writeJSON(s, sliceOut(sliceOut(results, setupResultOf), setupResultOut)); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// staleSetups says, for each app host whose last complete setup is not
// the one runSetup with o would make, why (deploy.StaleSetups). A host
// that cannot be asked is left out with a warning.
func staleSetups(ctx context.Context, s *streams, g *globalOptions, o *setupOptions) (map[string]string, error) {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return nil, err
	}
	stale, unasked, err := deploy.StaleSetups(ctx, a.App, o.binaries)
	for _, r := range unasked {
		fmt.Fprintf(s.err, "%s %s: cannot tell how it was set up: %v\n", paint(s.err, "warning:", yellow), r.Host, r.Err)
	}
	return stale, err
}
