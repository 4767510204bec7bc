package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type provisionOptions struct {
	prices  string
	replace bool
	noSetup bool
	binary  string
	json    bool
}

func newProvisionCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &provisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Make the hosts hoist.yml's infra section asks for, and set them up",
		Long: "provision shows the plan (what it creates, changes or deletes, and the\n" +
			"monthly cost), then carries it out: hosts boot a plain image that\n" +
			"cloud-init configures from user data hoist renders, with a host key\n" +
			"hoist made, so the first connection is verified; hoist then replaces\n" +
			"that key. Run again, it changes nothing, or resumes where an\n" +
			"interrupted run stopped. New hosts are set up as `hoist setup` does;\n" +
			"the addresses of all hosts are printed, one per line.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProvision(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringVar(&o.prices, "prices", "", "price file laid over hoist's table (docs/provision.md)")
	cmd.Flags().BoolVar(&o.replace, "replace", false, "replace hosts whose type, disk or image changed (their disks start empty)")
	cmd.Flags().BoolVar(&o.noSetup, "no-setup", false, "do not run hoist setup on new hosts")
	cmd.Flags().StringVar(&o.binary, "hoist-binary", "", "hoist binary that setup installs on new hosts (default: this one)")
	jsonFlag(cmd, &o.json)
	return cmd
}

func runProvision(ctx context.Context, s *streams, g *globalOptions, o *provisionOptions) error {
	in, err := loadInfra(ctx, g, s, o.prices, true)
	if err != nil {
		return err
	}
	plan, err := provision.MakePlan(ctx, in.opts, false)
	if err != nil {
		return err
	}
	printPlan(s.err, plan)
	in.opts.AllowReplace = o.replace
	res, err := provision.Apply(ctx, in.opts, plan)
	if err != nil {
		return err
	}
	st := in.opts.State
	if !res.Changed && len(res.New) == 0 {
		fmt.Fprintf(s.err, "nothing changed: %s\n", plan.Summary())
	}
	printBalancer(s, st.Balancer)
	if len(res.New) > 0 && !o.noSetup {
		fmt.Fprintf(s.err, "setting up %d new host(s)\n", len(res.New))
		if err := runSetup(ctx, s, g, &setupOptions{hosts: res.New, binary: o.binary}); err != nil {
			return err
		}
	}
	// The names follow the hosts (or the balancer) as they are now.
	if err := syncDNS(ctx, in.cfg, in.repo, s.err, false); err != nil {
		return err
	}
	if o.json {
		hosts := st.Targets()
		if hosts == nil {
			hosts = []string{}
		}
		return writeJSON(s, provisioned{Hosts: hosts, Balancer: st.Balancer})
	}
	for _, t := range st.Targets() {
		fmt.Fprintln(s.out, t)
	}
	return nil
}

// provisioned is what `hoist provision --json` prints.
type provisioned struct {
	Hosts    []string            `json:"hosts"`
	Balancer *provision.Balancer `json:"balancer,omitempty"`
}

// printBalancer tells where the balancer answers and, for a certificate
// hoist requested, the DNS records ACM waits for.
func printBalancer(s *streams, b *provision.Balancer) {
	if b == nil {
		return
	}
	fmt.Fprintf(s.err, "balancer %s answers at %s: point the app's names at it (CNAME or alias)\n", b.Name, b.DNSName)
	for _, v := range b.Validation {
		fmt.Fprintf(s.err, "certificate for %s: ACM issues it once this record exists: %s %s %s\n", v.Domain, v.Name, v.Type, v.Value)
	}
}

// infra is a loaded hoist.yml with an infra section, ready for the engine.
type infra struct {
	cfg  *config.Config
	repo string // hoist.yml's directory
	opts provision.Options
}

// loadInfra reads hoist.yml and prepares the engine: state, provider,
// prices, the operator's key and a dialer that trusts only known keys.
// With detect, an unset infra.ssh_from on AWS is found out: this
// machine's public address.
func loadInfra(ctx context.Context, g *globalOptions, s *streams, prices string, detect bool) (*infra, error) {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	if cfg.Infra.Provider == "" {
		return nil, usererr.New("hoist.yml has no infra section, so there is nothing to provision").
			WithHint("add one, for example `infra: {provider: aws, region: eu-west-1}`; docs/provision.md shows more")
	}
	spec := provision.SpecFrom(cfg)
	if spec.Provider == config.ProviderAWS && len(spec.SSHFrom) == 0 && detect {
		addr, err := provision.DetectPublicAddress(ctx)
		if err != nil {
			return nil, usererr.Wrap(err, "infra.ssh_from is not set and this machine's public address could not be found").
				WithHint("list who may reach SSH in infra.ssh_from, for example [203.0.113.7/32]")
		}
		fmt.Fprintf(s.err, "SSH is allowed from this machine's address %s (infra.ssh_from sets it)\n", addr)
		spec.SSHFrom = []string{addr}
	}
	home := hoistHome()
	knownHosts := filepath.Join(home, "known_hosts")
	st, err := provision.LoadState(home, cfg.App, spec.Env)
	if err != nil {
		return nil, err
	}
	p, err := provision.LoadPrices(prices)
	if err != nil {
		return nil, err
	}
	pub, err := operatorKey(cfg, home)
	if err != nil {
		return nil, err
	}
	var prov provision.Provider
	switch spec.Provider {
	case config.ProviderLab:
		prov = provision.NewLab(spec, knownHosts, s.err)
	case config.ProviderAWS:
		if prov, err = provision.NewAWS(ctx, spec, provision.AWSOptions{Log: s.err}); err != nil {
			return nil, err
		}
	}
	topts := transport.Options{
		User: cfg.SSH.User, Port: cfg.SSH.Port,
		// Only keys hoist recorded: nothing is trusted on first use.
		KnownHostsFiles: []string{knownHosts},
		IdentityFiles:   identityFiles(cfg, home),
		Log:             s.err,
	}
	return &infra{cfg: cfg, repo: repo, opts: provision.Options{
		Spec: spec, Provider: prov, State: st, KnownHosts: knownHosts,
		AuthorizedKeys: []string{pub}, Prices: p, Log: s.err,
		Dial: func(ctx context.Context, target string) (transport.Conn, error) {
			c, err := transport.Dial(ctx, target, topts)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	}}, nil
}

// operatorKey returns the public key that logs in to new hosts:
// infra.public_key, else ~/.ssh's usual keys, else a key hoist makes
// (identityFiles names its private half).
func operatorKey(cfg *config.Config, home string) (string, error) {
	if p := cfg.Infra.PublicKey; p != "" {
		b, err := os.ReadFile(expandHome(p))
		if err != nil {
			return "", usererr.Wrap(err, "infra.public_key").WithHint("name the .pub file of the key you log in with")
		}
		return strings.TrimSpace(string(b)), nil
	}
	if h, err := os.UserHomeDir(); err == nil {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			priv := filepath.Join(h, ".ssh", name)
			if b, err := os.ReadFile(priv + ".pub"); err == nil && fileExists(priv) {
				return strings.TrimSpace(string(b)), nil
			}
		}
	}
	pub, err := transport.EnsureKey(operatorKeyPath(home), "hoist-operator")
	return strings.TrimSpace(pub), err
}

func operatorKeyPath(home string) string { return filepath.Join(home, "keys", "operator") }
