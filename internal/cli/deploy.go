package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/secrets"
)

type deployOptions struct {
	ref     string
	hosts   []string
	rebuild bool
	json    bool
}

func newDeployCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Build a commit and make it the current release on every host",
		Long: "deploy builds REF (default HEAD) from a clean checkout, uploads the\n" +
			"release to every host, starts it, waits for its health check and only\n" +
			"then makes it current. A release that fails its check never becomes\n" +
			"current: the previous one keeps serving.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringVar(&o.ref, "ref", "HEAD", "branch, tag or commit to deploy")
	cmd.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if a release of the same source exists")
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "deploy to this host instead of the config's (repeatable)")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runDeploy(ctx context.Context, s *streams, g *globalOptions, o *deployOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	// Secrets are read before the build so that a missing key fails fast.
	var env []byte
	st := secretsStore(a.cfg, a.repo)
	_, statErr := os.Stat(st.Path)
	sendEnv := statErr == nil // without a secrets file, hosts' env files are left alone
	if sendEnv {
		vals, err := st.Load()
		if err != nil {
			return err
		}
		env = secrets.EnvFile(appSecrets(vals))
	}
	so := a.shipOptions(s)
	so.SendEnv, so.Env = sendEnv, env
	// Hosts are reached before the build: one that is down is named now,
	// not after a long build; with none reachable there is nothing to
	// build for.
	so.Members = so.Connect(ctx)
	defer fleet.Close(so.Members)
	if err := reachable(s, so.Members); err != nil {
		return err
	}
	art, err := deploy.Build(ctx, deploy.BuildOptions{Config: a.cfg, Repo: a.repo, Ref: o.ref, WorkDir: cacheDir(), Log: s.err, Dial: a.dial, Rebuild: o.rebuild, Verbose: g.verbose})
	if err != nil {
		return err
	}
	bars := newUploadBars(s.err, a.hosts)
	if bars != nil {
		so.Log, so.Meter = bars, bars.meter
	}
	results := deploy.Ship(ctx, so, art)
	if bars != nil {
		bars.wait()
	}
	err = report(s.err, results, "deploy of "+art.Manifest.ID)
	if o.json {
		m := art.Manifest
		if jerr := writeJSON(s, deployResult{Release: m.ID, Commit: m.Commit, Reused: art.Reused, Hosts: hostResults(results)}); jerr != nil {
			return jerr
		}
		return err
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(s.out, art.Manifest.ID)
	return nil
}

// deployResult is what `hoist deploy --json` prints.
type deployResult struct {
	Release string       `json:"release"`
	Commit  string       `json:"commit"`
	Reused  bool         `json:"reused"`
	Hosts   []hostResult `json:"hosts"`
}

// hostResult is how an operation went on one host.
type hostResult struct {
	Host string `json:"host"`
	OK   bool   `json:"ok"`
	// Release is the host's current release after the operation, where
	// the operation changes it.
	Release string `json:"release,omitempty"`
	Error   string `json:"error,omitempty"`
}

func hostResults(results []fleet.Result) []hostResult {
	out := make([]hostResult, len(results))
	for i, r := range results {
		out[i] = hostResult{Host: r.Host, OK: r.Err == nil, Error: errText(r.Err)}
	}
	return out
}

// reachable warns of each host that cannot be reached, and fails when
// none can.
func reachable(s *streams, members []fleet.Member) error {
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

func (a *app) shipOptions(s *streams) deploy.ShipOptions {
	return deploy.ShipOptions{Config: a.cfg, Hosts: a.hosts, Dial: a.dial, Log: s.err, LogMu: a.logMu, Client: a.client}
}
