package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/secrets"
)

type deployOptions struct {
	ref     string
	hosts   []string
	rebuild bool
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
	art, err := deploy.Build(ctx, deploy.BuildOptions{Config: a.cfg, Repo: a.repo, Ref: o.ref, WorkDir: cacheDir(), Log: s.err, Dial: a.dial, Rebuild: o.rebuild})
	if err != nil {
		return err
	}
	so := a.shipOptions(s)
	so.SendEnv, so.Env = sendEnv, env
	bars := newUploadBars(s.err, a.hosts)
	if bars != nil {
		so.Log, so.Meter = bars, bars.meter
	}
	results := deploy.Ship(ctx, so, art)
	if bars != nil {
		bars.wait()
	}
	if err := report(s.err, results, "deploy of "+art.Manifest.ID); err != nil {
		return err
	}
	fmt.Fprintln(s.out, art.Manifest.ID)
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
	return deploy.ShipOptions{Config: a.cfg, Hosts: a.hosts, Dial: a.dial, Log: s.err, LogMu: a.logMu, Sudo: a.sudo()}
}
