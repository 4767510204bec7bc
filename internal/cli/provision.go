package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type provisionOptions struct {
	prices   string
	replace  bool
	noSetup  bool
	binaries []string
	json     bool
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
	hoistBinaryFlag(cmd, &o.binaries)
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
	warnUnpriced(s.err, g, plan)
	printPlan(s.err, plan)
	in.opts.AllowReplace = o.replace
	res, err := provision.Apply(ctx, in.opts, plan)
	if err != nil {
		return err
	}
	st := in.opts.State
	// Converging includes the hosts' setup: a host made by an earlier run
	// whose setup was cut short, or that was set up for another hoist.yml
	// or hoist, is set up with the new ones.
	setup := slices.Clone(res.New)
	var why []string
	if !o.noSetup {
		if old := slices.DeleteFunc(st.Targets(), func(t string) bool { return slices.Contains(res.New, t) }); len(old) > 0 {
			stale, err := staleSetups(ctx, s, g, &setupOptions{hosts: old, binaries: o.binaries})
			if err != nil {
				return err
			}
			for _, t := range old {
				if reason, ok := stale[t]; ok {
					setup = append(setup, t)
					why = append(why, t+": "+reason)
				}
			}
		}
	}
	if !res.Changed && len(setup) == 0 {
		// The plan said what there is; say only that it stayed so.
		fmt.Fprintln(s.err, "nothing changed")
	}
	if where := provision.Where(in.opts.Spec); where != "" {
		fmt.Fprintln(s.err, where)
	}
	printBalancer(s, st.Balancer)
	if len(setup) > 0 && !o.noSetup {
		switch {
		case len(why) == 0:
			fmt.Fprintf(s.err, "setting up %d new host(s)\n", len(setup))
		case len(res.New) == 0:
			fmt.Fprintf(s.err, "setting up %d host(s) whose setup is not done (%s)\n", len(setup), strings.Join(why, "; "))
		default:
			fmt.Fprintf(s.err, "setting up %d new host(s) and %d whose setup is not done (%s)\n", len(res.New), len(why), strings.Join(why, "; "))
		}
		if err := runSetup(ctx, s, g, &setupOptions{hosts: setup, binaries: o.binaries}); err != nil {
			return err
		}
	}
	// The names follow the hosts (or the balancer) as they are now.
	if err := deploy.SyncDNS(ctx, localApp(in.cfg, in.repo), s.err, false); err != nil {
		return err
	}
	if o.json {
		hosts := st.Targets()
		if hosts == nil {
			hosts = []string{}
		}
		return writeJSON(s, provisionedJSON{Hosts: hosts, Balancer: ptrOut(st.Balancer, balancerOut)})
	}
	for _, t := range st.Targets() {
		fmt.Fprintln(s.out, t)
	}
	return nil
}

// printBalancer tells where the balancer answers. (The DNS records
// ACM waits for are printed by provision as soon as ACM says them.)
func printBalancer(s *streams, b *provision.Balancer) {
	if b == nil {
		return
	}
	if b.Addr != "" && b.DNSName == "" {
		fmt.Fprintf(s.err, "%s answers at %s: point the app's names at it; its certificate is from the lab's CA, %s\n", b.Name, b.Addr, b.CA)
		return
	}
	fmt.Fprintf(s.err, "balancer %s answers at %s: point the app's names at it (CNAME or alias)\n", b.Name, b.DNSName)
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
	if provision.PublicSSH(spec.Provider) && len(spec.SSHFrom) == 0 && detect {
		if ep := awsEndpoint(); ep != "" {
			// An emulator's or a private endpoint's hosts are not reached
			// from this machine's public address: asking for it would only
			// reach out to the internet for nothing.
			return nil, usererr.New("infra.ssh_from is not set, and hoist talks to AWS at %s, not AWS's own endpoints, so this machine's public address says nothing about who reaches the hosts", ep).
				WithHint("list who may reach SSH in infra.ssh_from, for example [127.0.0.1/32] for an emulator on this machine")
		}
		fmt.Fprintln(s.err, "infra.ssh_from is not set: asking https://checkip.amazonaws.com/ for this machine's public address (set infra.ssh_from to skip this)")
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
	prov, err := provision.New(ctx, spec, provision.Env{KnownHosts: knownHosts, Log: s.err})
	if err != nil {
		return nil, err
	}
	creds, err := g.credentials()
	if err != nil {
		return nil, err
	}
	topts := transport.Options{
		User: cfg.SSH.User, Port: cfg.SSH.Port,
		// Only keys hoist recorded: nothing is trusted on first use.
		KnownHostsFiles: []string{knownHosts},
		IdentityFiles:   identityFiles(cfg, home),
		Signers:         creds.signers,
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

// awsEndpoint is the endpoint the AWS SDK is pointed at instead of
// AWS's own, if any (AWS_ENDPOINT_URL, or EC2's own variable).
func awsEndpoint() string {
	for _, v := range []string{"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"} {
		if e := os.Getenv(v); e != "" {
			return e
		}
	}
	return ""
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
