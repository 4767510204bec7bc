package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
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
	p, err := dnsPlan(ctx, g, o.takeOver)
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
	p, err := dnsPlan(ctx, g, nil)
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
	a, err := zoneApp(g)
	if err != nil {
		return err
	}
	out := &dnsApplied{s: s, json: o.json, done: []dnsStepJSON{}}
	p, err := deploy.ApplyDNS(ctx, a, o.takeOver, false, out.step)
	if p == nil {
		return err
	}
	return out.finish(p, err)
}

func runDNSDestroy(ctx context.Context, s *streams, g *globalOptions, o *dnsOptions) error {
	a, err := zoneApp(g)
	if err != nil {
		return err
	}
	z, p, err := deploy.PlanDNS(ctx, a, nil, true)
	if err != nil {
		return err
	}
	if len(p.Changes()) > 0 && !o.yes {
		printDNSPlan(s.err, p)
		if err := confirm(s, a.Config.App, "remove its records"); err != nil {
			return err
		}
	}
	out := &dnsApplied{s: s, json: o.json, done: []dnsStepJSON{}}
	return out.finish(p, z.Apply(ctx, p, out.step))
}

// dnsApplied prints the changes of an apply, each as it is made, and
// with --json all of them at the end.
type dnsApplied struct {
	s    *streams
	json bool
	done []dnsStepJSON
}

func (d *dnsApplied) step(st dns.Step) {
	d.done = append(d.done, dnsStepOut(st))
	if !d.json {
		fmt.Fprintf(d.s.out, "%s\n", st)
	}
}

// finish prints what the apply of p did, and passes err on.
func (d *dnsApplied) finish(p *dns.Plan, err error) error {
	if d.json {
		res := dnsResultJSON{Plan: ptrOut(p, dnsPlanOut), Done: d.done}
		if err != nil {
			res.Error = err.Error()
		}
		if jerr := writeJSON(d.s, res); jerr != nil {
			return jerr
		}
	} else if len(d.done) == 0 && err == nil {
		fmt.Fprintf(d.s.out, "no changes: %s\n", summary(p))
	}
	return err
}

// zoneApp is hoist.yml's app, for the operations on its records.
func zoneApp(g *globalOptions) (*deploy.App, error) {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	return localApp(cfg, repo), nil
}

// dnsPlan plans hoist.yml's records: the names of proxy.hosts pointing
// at the hosts.
func dnsPlan(ctx context.Context, g *globalOptions, takeOver []string) (*dns.Plan, error) {
	a, err := zoneApp(g)
	if err != nil {
		return nil, err
	}
	_, p, err := deploy.PlanDNS(ctx, a, takeOver, false)
	return p, err
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
