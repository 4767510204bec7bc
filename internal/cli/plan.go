package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/provision"
)

type planOptions struct {
	prices  string
	json    bool
	offline bool
}

func newPlanCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what hoist provision would create, change or delete, and the monthly cost",
		Long: "plan compares hoist.yml's infra section with what exists (found by\n" +
			"hoist's tags) and prints the changes, the monthly cost line by line\n" +
			"from hoist's price table (its source and date included), and the same\n" +
			"hosts priced with balancer: none and with balancer: alb. It changes\n" +
			"nothing. --offline assumes nothing exists and needs no credentials.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringVar(&o.prices, "prices", "", "price file laid over hoist's table (docs/provision.md)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the plan as JSON (docs/provision.md describes it)")
	cmd.Flags().BoolVar(&o.offline, "offline", false, "do not look at what exists: plan from nothing, with no credentials")
	return cmd
}

func runPlan(ctx context.Context, s *streams, g *globalOptions, o *planOptions) error {
	in, err := loadInfra(ctx, g, s, o.prices, !o.offline)
	if err != nil {
		return err
	}
	plan, err := provision.MakePlan(ctx, in.opts, o.offline)
	if err != nil {
		return err
	}
	warnUnpriced(s.err, g, plan)
	if o.json {
		return writeJSON(s, ptrOut(plan, planOut))
	}
	printPlan(s.out, plan)
	return nil
}

var actionMarks = map[provision.Action]string{
	provision.Create: "+", provision.Update: "~", provision.Replace: "-/+", provision.Delete: "-",
}

// printPlan writes the plan for people: changes, cost, comparison.
func printPlan(w io.Writer, p *provision.Plan) {
	where := p.Provider
	if p.Region != "" {
		where += " in " + p.Region
	}
	fmt.Fprintf(w, "plan for %s (%s) on %s:\n", p.App, p.Env, where)
	tw := table(w)
	for _, c := range p.Changes {
		props := c.Resource.Props
		if c.Was != nil {
			props += " (was: " + c.Was.Props + ")"
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", actionMarks[c.Action], c.Action, c.Resource.Kind, c.Resource.Name, props)
	}
	tw.Flush()
	fmt.Fprintln(w, p.Summary())
	printCost(w, p)
}

// warnUnpriced names each setting of hoist.yml the price table lacks,
// at its line, and how to give its price.
func warnUnpriced(w io.Writer, g *globalOptions, p *provision.Plan) {
	file := g.configPath
	if file == "" {
		file = config.FileName
	}
	for _, u := range p.Cost.Unpriced {
		fmt.Fprintf(w, "%s %v; its cost below is unknown\n", paint(w, "warning:", yellow), config.Locate(file, g.destination, u.Field, u.Msg))
		fmt.Fprintf(w, "  %s %s\n", paint(w, "hint:", yellow), provision.PricesHint)
	}
}

func printCost(w io.Writer, p *provision.Plan) {
	c := p.Cost
	fmt.Fprintf(w, "\nmonthly cost (%s):\n", c.Currency)
	for _, l := range c.Lines {
		rate := fmt.Sprintf("%s %s × $%s", trimFloat(l.Quantity), l.Unit, trimFloat(l.UnitPrice))
		monthly := fmt.Sprintf("$%.2f", l.Monthly)
		if l.Unknown {
			rate, monthly = fmt.Sprintf("%s %s × $?", trimFloat(l.Quantity), l.Unit), "unknown"
		}
		fmt.Fprintf(w, "  %-48s %30s %9s\n", l.Item, rate, monthly)
	}
	fmt.Fprintf(w, "  %-48s %30s %9s\n", "total", unknownPart(len(c.Unpriced) > 0), fmt.Sprintf("$%.2f", c.Total))
	for _, a := range c.Assumptions {
		fmt.Fprintf(w, "  assuming %s\n", a)
	}
	if c.Source != "" {
		fmt.Fprintf(w, "  prices as of %s: %s\n", c.AsOf, c.Source)
	}
	if len(p.Compare) == 0 {
		return
	}
	fmt.Fprintln(w, "\nthe same hosts with each front:")
	var base float64
	for _, cmp := range p.Compare {
		if cmp.Current {
			base = cmp.Total
		}
	}
	for _, cmp := range p.Compare {
		note := "this plan"
		if d := cmp.Total - base; !cmp.Current && d >= 0 {
			note = fmt.Sprintf("$%.2f more", d)
		} else if !cmp.Current {
			note = fmt.Sprintf("$%.2f less", -d)
		}
		if cmp.Unknown {
			note += ", " + unknownPart(true)
		}
		fmt.Fprintf(w, "  balancer: %-5s %9s a month (%s)\n", cmp.Balancer, fmt.Sprintf("$%.2f", cmp.Total), note)
	}
}

// unknownPart says that a total leaves out what has no price.
func unknownPart(unknown bool) string {
	if unknown {
		return "plus what is unknown"
	}
	return ""
}

// trimFloat writes a quantity or price without trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 4, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
