package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/usererr"
)

type deployOptions struct {
	ref     string
	hosts   []string
	rebuild bool
	full    bool
	json    bool
	stage   bool
}

func newDeployCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Build a commit and make it the current release on every host",
		Long: "deploy builds REF (default HEAD) from a clean checkout, sends every\n" +
			"host what it lacks of the release (hosts pass it on to each other), then\n" +
			"switches the hosts to it as hoist.yml's deploy section says: each starts\n" +
			"it, waits for its health check and only then makes it current. When a\n" +
			"host fails, the deploy stops and every host that switched goes back to\n" +
			"its previous release.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringVar(&o.ref, "ref", "HEAD", "branch, tag or commit to deploy")
	cmd.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if a release of the same source exists")
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "deploy to this host instead of the config's (repeatable)")
	cmd.Flags().BoolVar(&o.full, "full", false, "send every host the whole release, whatever it already holds")
	cmd.Flags().BoolVar(&o.stage, "stage", false, "only put the release on the hosts; none switches (a later deploy of the same commit does)")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runDeploy(ctx context.Context, s *streams, g *globalOptions, o *deployOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	// A builder that cannot run on this machine (rootfs on a Mac) is
	// named before any host is reached.
	if _, err := build.New(a.Config.Build, build.Deps{Dial: a.Dial}); err != nil {
		return err
	}
	// Secrets are read before the build so that a missing key fails fast.
	sendEnv, env, err := a.secretsEnv()
	if err != nil {
		return err
	}
	so := a.shipOptions(s, g)
	so.SendEnv, so.Env = sendEnv, env
	// The store's key and credentials too: a deploy that cannot sign is
	// refused before the build.
	if so.Store, err = a.storeOptions(g); err != nil {
		return err
	}
	so.WorkDir, so.Full, so.Stage = cacheDir(), o.full, o.stage
	if so.Balancer, err = a.balancer(ctx, &lockedWriter{w: s.err, mu: a.LogMu}); err != nil {
		return err
	}
	// Hosts are reached before the build: one that is down is named now,
	// not after a long build; with none reachable there is nothing to
	// build for.
	so.Members = so.Connect(ctx)
	defer fleet.Close(so.Members)
	if err := reachable(s, so.Members); err != nil {
		return err
	}
	spec := deploy.Spec(a.Config)
	if err := a.checkCalendars(ctx, g, so.Members, spec); err != nil {
		return err
	}
	art, err := build.Release(ctx, build.Options{Config: a.Config, Repo: a.Repo, Ref: o.ref, WorkDir: cacheDir(), Log: s.err, Dial: a.Dial, Rebuild: o.rebuild, Verbose: g.verbose})
	if err != nil {
		return err
	}
	bars := newUploadBars(s.err, a.Hosts)
	if bars != nil {
		so.Log, so.Meter = bars, bars.meter
	}
	out := deploy.Ship(ctx, so, art)
	if bars != nil {
		bars.wait()
	}
	if o.json {
		// Ship's outcome is never nil.
		if err := writeJSON(s, deployResultJSON{outcomeJSON: outcomeOut(*out), Commit: art.Manifest.Commit, Reused: art.Reused}); err != nil {
			return err
		}
	}
	printOutcome(s.err, out)
	if err := deployReport(s.err, out); err != nil {
		return err
	}
	if !o.stage {
		if err := a.scheduleDeployed(ctx, s, g, so.Members, spec, deployedHosts(out)); err != nil {
			return err
		}
	}
	a.WarnBackups(ctx, s.err)
	if !o.json {
		fmt.Fprintln(s.out, art.Manifest.ID)
	}
	return nil
}

// deployedHosts are the hosts that serve the deploy's release now.
func deployedHosts(out *deploy.Outcome) []string {
	var hosts []string
	for _, r := range out.Hosts {
		if r.Status == deploy.StatusDeployed {
			hosts = append(hosts, r.Host)
		}
	}
	return hosts
}

// printOutcome says, when a deploy stopped, why and what each host
// serves now.
func printOutcome(w io.Writer, out *deploy.Outcome) {
	if out.Stopped == "" {
		return
	}
	fmt.Fprintf(w, "%s the deploy stopped: %s\n", paint(w, "error:", red), out.Stopped)
	for _, r := range out.Hosts {
		line := fmt.Sprintf("  %-24s %s", r.Host, r.Status)
		if r.Serving != "" {
			line += ", serves " + r.Serving
		}
		fmt.Fprintln(w, line)
	}
}

// deployReport prints why each host that failed did, and returns an
// error that says what happened on every host, or nil when each serves
// the release. A host that went back, or never switched, because
// another failed is counted as what it is, not as a failure (the table
// of printOutcome says which is which).
func deployReport(w io.Writer, out *deploy.Outcome) error {
	if len(fleet.Failed(out.Results())) == 0 {
		return nil
	}
	var own []fleet.Result
	for _, r := range out.Hosts {
		if r.Err != nil {
			own = append(own, fleet.Result{Host: r.Host, Err: r.Err})
		}
	}
	printFailed(w, own)
	return &usererr.Error{Msg: fmt.Sprintf("deploy of %s failed on %d of %d host(s): %s", out.Release, len(own), len(out.Hosts), out.Summary())}
}

// reachable warns of each host that cannot be reached, and fails when
// none can.
func reachable(s *streams, members []fleet.Member) error {
	if err := fleet.Distinct(members); err != nil {
		return err
	}
	var down []fleet.Result
	for _, m := range members {
		if m.Err != nil {
			down = append(down, fleet.Result{Host: m.Host, Err: m.Err})
			fmt.Fprintf(s.err, "%s %s cannot be reached: %v\n", paint(s.err, "warning:", yellow), m.Host, m.Err)
		}
	}
	if len(down) == len(members) {
		return report(s.err, down, "deploy")
	}
	return nil
}

// secretsEnv is the env file of the app's secrets, and whether to send
// it: without a secrets file, hosts' env files are left alone.
func (a *app) secretsEnv() (bool, []byte, error) {
	st := secretsStore(a.Config, a.Repo)
	if _, err := os.Stat(st.Path); err != nil {
		return false, nil, nil
	}
	vals, err := st.Load()
	if err != nil {
		return false, nil, err
	}
	return true, secrets.EnvFile(appSecrets(vals)), nil
}

// appSecrets are the secrets the app gets: all but hoist's own DNS
// credentials.
func appSecrets(vals map[string]string) map[string]string {
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if !strings.HasPrefix(k, dns.SecretPrefix) {
			out[k] = v
		}
	}
	return out
}

func (a *app) shipOptions(s *streams, g *globalOptions) deploy.ShipOptions {
	return deploy.ShipOptions{Config: a.Config, Hosts: a.Hosts, Dial: a.Dial, Log: s.err, LogMu: a.LogMu, Client: a.Client, Verbose: g.verbose}
}

// balancer is the load balancer provisioning made in front of the
// hosts, or nil when there is none.
func (a *app) balancer(ctx context.Context, log io.Writer) (deploy.Balancer, error) {
	if a.Config.Infra.Balancer != config.BalancerALB {
		return nil, nil
	}
	st, err := provision.LoadState(hoistHome(), a.Config.App, a.Config.Infra.Env)
	if err != nil {
		return nil, err
	}
	b, err := provision.NewTargets(ctx, st, provision.ALBOptions{Log: log})
	if err != nil {
		return nil, err
	}
	return b, nil
}
