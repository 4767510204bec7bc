package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/proxy"
	hoisttls "github.com/hoistdev/hoist/internal/tls"
	"github.com/hoistdev/hoist/internal/transport"
)

type proxyOptions struct {
	http, https, control, state, metrics  string
	acmeCA, acmeEmail, acmeRoots, storage string
	trusted                               []string
	hosts                                 []string
	json                                  bool
	accessLog                             bool
}

func newProxyCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "hoist's edge proxy: run it (on a host), or show its routes on the hosts",
	}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the edge proxy (systemd runs this on each host)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var trusted []netip.Prefix
			for _, t := range o.trusted {
				p, err := netip.ParsePrefix(t)
				if err != nil {
					return usage("--trusted-proxy %q: %v", t, err)
				}
				trusted = append(trusted, p)
			}
			log := slog.New(slog.NewJSONHandler(s.err, nil))
			var access *slog.Logger
			if o.accessLog {
				access = log
			}
			certs, err := hoisttls.New(hoisttls.Options{CA: o.acmeCA, Email: o.acmeEmail, RootsFile: o.acmeRoots, Storage: o.storage})
			if err != nil {
				return err
			}
			return proxy.Run(cmd.Context(), proxy.RunOptions{
				HTTP: o.http, HTTPS: o.https, Control: o.control, Metrics: o.metrics, Log: log,
				Options: proxy.Options{StatePath: o.state, TrustedProxies: trusted, AccessLog: access, Certs: certs},
			})
		},
	}
	run.Flags().StringVar(&o.http, "http", ":80", "public HTTP address, when systemd passes no socket")
	run.Flags().StringVar(&o.https, "https", ":443", "public HTTPS address, when systemd passes no socket")
	run.Flags().StringVar(&o.acmeCA, "acme-ca", "", "ACME directory URL (default Let's Encrypt)")
	run.Flags().StringVar(&o.acmeEmail, "acme-email", "", "ACME account contact")
	run.Flags().StringVar(&o.acmeRoots, "acme-root", "", "PEM file of roots to trust the ACME CA's API with")
	run.Flags().StringVar(&o.storage, "storage", "/var/lib/hoist/proxy/certificates", "where certificates are kept")
	run.Flags().StringVar(&o.control, "control", host.ProxySocket, "control socket")
	run.Flags().StringVar(&o.state, "state", "/var/lib/hoist/proxy/state.json", "where routes persist")
	run.Flags().StringVar(&o.metrics, "metrics", "127.0.0.1:9180", "Prometheus metrics address (\"\" for none)")
	run.Flags().BoolVar(&o.accessLog, "access-log", true, "log every request as a JSON line on stderr (the journal)")
	run.Flags().StringArrayVar(&o.trusted, "trusted-proxy", nil, "CIDR whose X-Forwarded-* headers are kept (repeatable)")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show each host's proxy routes, upstreams and health",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runProxyStatus(cmd.Context(), s, g, o) },
	}
	status.Flags().StringArrayVar(&o.hosts, "host", nil, "ask this host instead of the config's (repeatable)")
	status.Flags().BoolVar(&o.json, "json", false, "print JSON")
	cmd.AddCommand(run, status)
	return cmd
}

type hostProxy struct {
	Host   string              `json:"host"`
	Routes []proxy.RouteStatus `json:"routes"`
	Error  string              `json:"error,omitempty"`
}

func runProxyStatus(ctx context.Context, s *streams, g *globalOptions, o *proxyOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	out := make([]hostProxy, len(a.hosts))
	results := fleet.Each(ctx, a.hosts, a.cfg.SSH.Parallel, a.dial, func(ctx context.Context, h string, conn transport.Conn) error {
		rs, err := a.client(conn).ProxyStatus(ctx)
		out[indexOf(a.hosts, h)].Routes = rs
		return err
	})
	for i, r := range results {
		out[i].Host = r.Host
		if out[i].Routes == nil {
			out[i].Routes = []proxy.RouteStatus{}
		}
		if r.Err != nil {
			out[i].Error = r.Err.Error()
		}
	}
	if o.json {
		return writeJSON(s, out)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tAPP\tHOSTS\tUPSTREAM\tHEALTHY\tIN FLIGHT\tWEBSOCKETS")
	for _, hp := range out {
		for _, r := range hp.Routes {
			names, _ := json.Marshal(r.Hosts)
			fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%s\t%d\t%d\n", hp.Host, r.App, names, r.PathPrefix, r.Upstream, yesNo(r.Healthy), r.InFlight, r.OpenWebSockets)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return report(s.err, results, "proxy status")
}
