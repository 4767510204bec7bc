package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type dnsOptions struct {
	json     bool
	takeOver []string
	yes      bool
}

func newDNSCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &dnsOptions{}
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Keep the DNS records of proxy.hosts in step with the hosts",
		Long: `The dns section of hoist.yml names the app's DNS provider and zone. hoist
points every name of proxy.hosts at the app's hosts (A and AAAA records),
marks each name it set with an ownership record beside it, and changes
only names it marked. hoist setup applies the records too.`,
	}
	plan := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDNSPlan(cmd.Context(), s, g, o) },
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Set the records of proxy.hosts to point at the hosts",
		Long: `apply makes the changes plan shows. Records that hoist did not make are
left alone and named, unless --take-over names them: then hoist replaces
them and owns them from then on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDNSApply(cmd.Context(), s, g, o) },
	}
	apply.Flags().StringArrayVar(&o.takeOver, "take-over", nil, "replace and own this name's records even though hoist did not make them (repeatable)")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each name's records at the provider against what hoist wants",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDNSStatus(cmd.Context(), s, g, o) },
	}
	destroy := &cobra.Command{
		Use:   "destroy",
		Short: "Remove every record hoist made for the app, and nothing else",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDNSDestroy(cmd.Context(), s, g, o) },
	}
	destroy.Flags().BoolVar(&o.yes, "yes", false, "do not ask for the app's name")
	for _, c := range []*cobra.Command{plan, apply, status, destroy} {
		c.Flags().BoolVar(&o.json, "json", false, "print JSON (docs/dns.md describes it)")
	}
	cmd.AddCommand(plan, apply, status, destroy)
	return cmd
}

func runDNSPlan(ctx context.Context, s *streams, g *globalOptions, o *dnsOptions) error {
	_, p, err := dnsPlan(ctx, g, o.takeOver, false)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(s, ptrOut(p, dnsPlanOut))
	}
	printDNSPlan(s.out, p)
	return nil
}

func runDNSStatus(ctx context.Context, s *streams, g *globalOptions, o *dnsOptions) error {
	_, p, err := dnsPlan(ctx, g, nil, false)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(s, ptrOut(p, dnsPlanOut))
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "NAME\tSTATE\tRECORDS\tWANTED\tOWNER")
	for _, e := range p.Names {
		owner := e.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.State, e.Have, e.Want, owner)
	}
	return tw.Flush()
}

func runDNSApply(ctx context.Context, s *streams, g *globalOptions, o *dnsOptions) error {
	z, p, err := dnsPlan(ctx, g, o.takeOver, false)
	if err != nil {
		return err
	}
	return applyPlan(ctx, s, z, p, o.json)
}

func runDNSDestroy(ctx context.Context, s *streams, g *globalOptions, o *dnsOptions) error {
	z, p, err := dnsPlan(ctx, g, nil, true)
	if err != nil {
		return err
	}
	if len(p.Changes()) > 0 && !o.yes {
		cfg, _, _ := loadConfig(g)
		printDNSPlan(s.err, p)
		if err := confirm(s, cfg.App, "remove its records"); err != nil {
			return err
		}
	}
	return applyPlan(ctx, s, z, p, o.json)
}

// applyPlan applies p, printing each change as it is made.
func applyPlan(ctx context.Context, s *streams, z *dns.Zone, p *dns.Plan, asJSON bool) error {
	res := dnsResultJSON{Plan: ptrOut(p, dnsPlanOut), Done: []dnsStepJSON{}}
	err := z.Apply(ctx, p, func(st dns.Step) {
		res.Done = append(res.Done, dnsStepOut(st))
		if !asJSON {
			fmt.Fprintf(s.out, "%s\n", st)
		}
	})
	if asJSON {
		if err != nil {
			res.Error = err.Error()
		}
		if jerr := writeJSON(s, res); jerr != nil {
			return jerr
		}
	} else if len(res.Done) == 0 && err == nil {
		fmt.Fprintf(s.out, "no changes: %s\n", summary(p))
	}
	return err
}

// dnsPlan loads hoist.yml, opens its zone and plans it: the names of
// proxy.hosts pointing at the hosts, or none to destroy.
func dnsPlan(ctx context.Context, g *globalOptions, takeOver []string, destroy bool) (*dns.Zone, *dns.Plan, error) {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return nil, nil, err
	}
	if !destroy && cfg.DNS.On() && !cfg.DNS.KeepsRecords() {
		return nil, nil, usererr.New("dns.records is false: hoist keeps no records for %s", cfg.App).
			WithHint("`hoist dns destroy` removes those it made before")
	}
	z, err := openZone(cfg, repo)
	if err != nil {
		return nil, nil, err
	}
	want := dns.Want{}
	if !destroy {
		if want, err = dnsWant(ctx, cfg); err != nil {
			return nil, nil, err
		}
	}
	p, err := z.Plan(ctx, want, takeOver)
	return z, p, err
}

// openZone is the app's zone at its provider, with credentials from the
// environment or hoist secrets.
func openZone(cfg *config.Config, repo string) (*dns.Zone, error) {
	if !cfg.DNS.On() {
		return nil, usererr.New("hoist.yml has no dns section").
			WithHint("name the app's DNS provider and zone under dns: (docs/dns.md)")
	}
	creds, err := dnsCredentials(cfg, repo)
	if err != nil {
		return nil, err
	}
	p, err := dns.New(cfg.DNS.Provider, creds)
	if err != nil {
		return nil, err
	}
	return &dns.Zone{Provider: cfg.DNS.Provider, Name: cfg.DNS.Zone, Owner: cfg.DNS.OwnerOr(cfg.App), TTL: cfg.DNS.TTL.Duration, API: p}, nil
}

// dnsCredentials gathers the provider's settings and credentials: the
// environment first, then hoist secrets (read only when the environment
// lacks something), then hoist.yml's settings.
func dnsCredentials(cfg *config.Config, repo string) (dns.Credentials, error) {
	env := func(name string) (string, bool) { return os.LookupEnv(name) }
	c, err := dns.Gather(cfg.DNS.Provider, cfg.DNS.Settings, env)
	var missing *dns.MissingError
	st := secretsStore(cfg, repo)
	if !errors.As(err, &missing) || !fileExists(st.Path) {
		return c, asUserError(err)
	}
	vals, serr := st.Load()
	if serr != nil {
		return nil, serr
	}
	c, err = dns.Gather(cfg.DNS.Provider, cfg.DNS.Settings, func(name string) (string, bool) {
		if v, ok := env(name); ok && v != "" {
			return v, true
		}
		v, ok := vals[dns.SecretPrefix+name]
		return v, ok
	})
	return c, asUserError(err)
}

func asUserError(err error) error {
	var missing *dns.MissingError
	if errors.As(err, &missing) {
		return usererr.Wrap(err, "the DNS provider's credentials are not set").
			WithHint("export them, or keep them in hoist secrets under %s, like `hoist secrets set %s` (docs/dns.md)", dns.SecretPrefix, missing.Secret())
	}
	return err
}

// dnsWant is the records that point the names of proxy.hosts at the
// app's hosts.
func dnsWant(ctx context.Context, cfg *config.Config) (dns.Want, error) {
	hosts, st, err := appHosts(cfg)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, usererr.New("no hosts to point %s at", strings.Join(cfg.Proxy.Hosts, ", ")).
			WithHint("list them under hosts: in hoist.yml, or provision them (infra:)")
	}
	t, err := dnsTargets(ctx, cfg, hosts, st)
	if err != nil {
		return nil, err
	}
	return dns.Desired(cfg.Proxy.Hosts, t)
}

// dnsTargets are where the app's names point: the balancer hoist
// provision made, else the public addresses of the hosts it made, else
// the addresses of hoist.yml's hosts.
func dnsTargets(ctx context.Context, cfg *config.Config, hosts []string, st *provision.State) (dns.Targets, error) {
	var t dns.Targets
	if st != nil {
		if st.Balancer != nil && st.Balancer.DNSName != "" {
			t.Balancer = st.Balancer.DNSName
			return t, nil
		}
		if b := st.Balancer; b != nil && b.Addr != "" {
			// The lab's balancer twin has an address and no name.
			a, err := netip.ParseAddr(b.Addr)
			if err != nil {
				return t, fmt.Errorf("the balancer's address %q: %w", b.Addr, err)
			}
			t.Addresses = []netip.Addr{a}
			return t, nil
		}
		for _, h := range st.Hosts {
			a, err := netip.ParseAddr(h.Addr())
			if err != nil {
				return t, fmt.Errorf("provisioned host %s has no address yet: %w", h.Name, err)
			}
			t.Addresses = append(t.Addresses, a.Unmap())
		}
		return t, nil
	}
	for _, h := range hosts {
		as, err := hostAddresses(ctx, cfg, h)
		if err != nil {
			return t, err
		}
		t.Addresses = append(t.Addresses, as...)
	}
	return t, nil
}

// hostAddresses are the addresses a host's names point at: dns.addresses
// for it, else the address hoist reaches it by (an ssh_config alias's
// HostName, resolved).
func hostAddresses(ctx context.Context, cfg *config.Config, h string) ([]netip.Addr, error) {
	if list, ok := cfg.DNS.Addresses[h]; ok {
		var out []netip.Addr
		for _, a := range list {
			out = append(out, netip.MustParseAddr(a)) // checked by config
		}
		return out, nil
	}
	t, err := transport.ParseTarget(h)
	if err != nil {
		return nil, err
	}
	name := transport.HostName(t.Host, transport.Options{})
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil || len(ips) == 0 {
		return nil, usererr.Wrap(err, "cannot find the address of host %s for its DNS records", h).
			WithHint("give it in hoist.yml: dns.addresses: {%s: [ADDRESS]}", h)
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// printDNSPlan writes one line per name that changes or is refused.
func printDNSPlan(w io.Writer, p *dns.Plan) {
	fmt.Fprintf(w, "%s zone %s, owner %s:\n", p.Provider, p.Zone, p.Owner)
	n := 0
	for _, e := range p.Names {
		if e.Action != dns.None {
			fmt.Fprintf(w, "  %s\n", e.Describe())
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "  no changes: %s\n", summary(p))
	}
}

func summary(p *dns.Plan) string {
	return fmt.Sprintf("%d name(s) in step", len(p.Names))
}

// syncDNS applies the app's records after setup and provision, or
// removes them (remove) before destroy, with progress on log.
func syncDNS(ctx context.Context, cfg *config.Config, repo string, log io.Writer, remove bool) error {
	if !cfg.DNS.KeepsRecords() {
		return nil
	}
	z, err := openZone(cfg, repo)
	if err != nil {
		return err
	}
	want := dns.Want{}
	if !remove {
		if want, err = dnsWant(ctx, cfg); err != nil {
			return err
		}
	}
	p, err := z.Plan(ctx, want, nil)
	if err != nil {
		return err
	}
	return z.Apply(ctx, p, func(st dns.Step) { fmt.Fprintf(log, "dns: %s\n", st) })
}
