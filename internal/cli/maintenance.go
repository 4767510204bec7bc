package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type maintenanceOptions struct {
	hosts      []string
	message    string
	retryAfter time.Duration
	json       bool
}

func newMaintenanceCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &maintenanceOptions{}
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "Answer the app's requests with a 503 page while it keeps running (on, off, status)",
		Long: "In maintenance, each host's edge proxy answers every request for the app\n" +
			"with 503, the message and Retry-After — the app's own 503 page when\n" +
			"proxy.error_pages has one — while the app keeps running behind it, for a\n" +
			"migration, say. Deploys meanwhile keep it on. It needs the app behind the\n" +
			"proxy (proxy.hosts).",
	}
	cmd.PersistentFlags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	on := &cobra.Command{
		Use:   "on",
		Short: "Turn maintenance on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.retryAfter < 0 {
				return usage("--retry-after must not be negative")
			}
			return runMaintenance(cmd.Context(), s, g, o, true)
		},
	}
	on.Flags().StringVar(&o.message, "message", "", "what the page says (text)")
	on.Flags().DurationVar(&o.retryAfter, "retry-after", proxy.DefaultRetryAfter, "sent as Retry-After: when clients may try again")
	jsonFlag(on, &o.json)
	off := &cobra.Command{
		Use:   "off",
		Short: "Turn maintenance off: the app serves again at once",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMaintenance(cmd.Context(), s, g, o, false) },
	}
	jsonFlag(off, &o.json)
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether each host's proxy has the app in maintenance",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runMaintenanceStatus(cmd.Context(), s, g, o) },
	}
	jsonFlag(status, &o.json)
	cmd.AddCommand(on, off, status)
	return cmd
}

// proxiedApp loads the app and refuses one without the proxy.
func proxiedApp(g *globalOptions, s *streams, hosts []string) (*app, error) {
	a, err := loadApp(g, s, hosts)
	if err != nil {
		return nil, err
	}
	if len(a.Config.Proxy.Hosts) == 0 {
		return nil, usererr.New("maintenance mode is the edge proxy's, and %s puts no proxy in front of %s", configName(a.Config), a.Config.App).
			WithHint("list the app's names in proxy.hosts, run hoist setup, and deploy")
	}
	return a, nil
}

func runMaintenance(ctx context.Context, s *streams, g *globalOptions, o *maintenanceOptions, on bool) error {
	a, err := proxiedApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	if len(o.message) > proxy.MaxMessageBytes {
		return usage("--message: at most %d bytes", proxy.MaxMessageBytes)
	}
	state := "off"
	if on {
		state = "on"
	}
	results := fleet.Each(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) error {
		if err := a.Client(conn).Maintenance(ctx, on, o.message, o.retryAfter); err != nil {
			return err
		}
		a.Logf(s.err, h, "maintenance %s", state)
		return nil
	})
	if o.json {
		out := make([]maintenanceResult, len(results))
		for i, r := range results {
			out[i] = maintenanceResult{Host: r.Host, OK: r.Err == nil, Error: errText(r.Err)}
			if r.Err == nil {
				out[i].State = state
			}
		}
		if err := writeJSON(s, out); err != nil {
			return err
		}
	}
	return report(s.err, results, "maintenance "+state)
}

// hostMaintenance is one line of `hoist maintenance status`.
type hostMaintenance struct {
	Host        string                 `json:"host"`
	Maintenance *hostproto.Maintenance `json:"maintenance"`
	Error       string                 `json:"error,omitempty"`
}

func runMaintenanceStatus(ctx context.Context, s *streams, g *globalOptions, o *maintenanceOptions) error {
	a, err := proxiedApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	routes, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.RouteStatus, error) {
		return a.Client(conn).ProxyStatus(ctx)
	})
	out := make([]hostMaintenance, len(results))
	for i, r := range results {
		out[i] = hostMaintenance{Host: r.Host, Error: errText(r.Err)}
		for _, rt := range routes[i] {
			if rt.App == a.Config.App {
				out[i].Maintenance = rt.Maintenance
			}
		}
	}
	if o.json {
		if err := writeJSON(s, sliceOut(out, hostMaintenanceOut)); err != nil {
			return err
		}
		return report(s.err, results, "maintenance status")
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "HOST\tMAINTENANCE\tSINCE\tRETRY AFTER\tMESSAGE")
	for _, hm := range out {
		m := hm.Maintenance
		switch {
		case hm.Error != "":
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", hm.Host, hm.Error)
		case m == nil:
			fmt.Fprintf(tw, "%s\toff\t-\t-\t-\n", hm.Host)
		default:
			fmt.Fprintf(tw, "%s\ton\t%s\t%s\t%s\n", hm.Host, localTime(m.Since), m.RetryAfter.Duration, dash(m.Message))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return report(s.err, results, "maintenance status")
}
