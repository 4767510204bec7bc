package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/platform"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/transport"
)

type proxyOptions struct {
	http, https, control, state, metrics  string
	acmeCA, acmeEmail, acmeRoots, storage string
	plans, peerListen, issuer             string
	defaultName                           string
	tlsInternal, pprof, fastLoop          bool
	trusted                               []string
	balancers                             []string
	accessLog                             bool
	healthInterval, writeTimeout          time.Duration
	timeouts                              proxy.Timeouts

	hosts  []string
	socket string
	json   bool
}

func newProxyCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &proxyOptions{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "hoist's edge proxy: run it (on a host), or show its routes",
	}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the edge proxy (systemd runs this on each host)",
		Long: `Run the edge proxy in the foreground until SIGTERM or SIGINT.

It listens on --http and --https, or on the sockets systemd passes
(socket activation: the first is HTTP, the second HTTPS), tells systemd
when it is ready (Type=notify), and takes routes on the --control unix
socket. Routes persist in --state. Certificates come from the ACME CA at
--acme-ca (Let's Encrypt by default), or from a local CA kept in
--storage with --tls-internal (for labs: trust internal-ca/root.pem);
hoist setup writes that choice to a file the proxy reads (--issuer).

SIGHUP, or hoist proxy upgrade, upgrades it without a gap: the hoist
binary on disk starts with the same arguments and takes the listening
sockets over, while this process finishes its requests and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxy(cmd.Context(), s, o) },
	}
	f := run.Flags()
	f.StringVar(&o.http, "http", ":80", "public HTTP address, when systemd passes no socket")
	f.StringVar(&o.https, "https", ":443", "public HTTPS address, when systemd passes no socket")
	f.StringVar(&o.control, "control", host.ProxySocket, "control socket (JSON over HTTP)")
	f.StringVar(&o.state, "state", host.ProxyStatePath, "where routes persist")
	f.StringVar(&o.metrics, "metrics", "127.0.0.1:9180", "loopback address for Prometheus /metrics (\"\" for none)")
	f.StringVar(&o.acmeCA, "acme-ca", "", "ACME directory URL (default Let's Encrypt)")
	f.StringVar(&o.acmeEmail, "acme-email", "", "ACME account contact")
	f.StringVar(&o.acmeRoots, "acme-root", "", "PEM file of roots to trust the ACME CA's API with (a private CA, Pebble)")
	f.StringVar(&o.storage, "storage", host.ProxyStorage, "where certificates, keys and the internal CA are kept")
	f.StringVar(&o.issuer, "issuer", "", "JSON file naming the certificate issuer, as hoist setup writes it (instead of --tls-internal and --acme-*)")
	f.BoolVar(&o.tlsInternal, "tls-internal", false, "issue certificates from a local CA in --storage instead of an ACME CA (labs)")
	f.StringVar(&o.defaultName, "tls-default-name", "", "certificate name served to TLS clients that send no server name (SNI)")
	f.StringVar(&o.plans, "tls-plans", host.ProxyTLSPlans, "directory of the apps' certificate plans (challenges, DNS provider, peers), written by hoist setup")
	f.StringVar(&o.peerListen, "peer-listen", "", "where hosts that copy this host's certificates reach it (default: the addresses the certificate plans name, port "+strconv.Itoa(certs.DefaultPeerPort)+")")
	f.BoolVar(&o.pprof, "pprof", false, "also serve /debug/pprof/ on the --metrics address")
	f.BoolVar(&o.accessLog, "access-log", true, "log every request as a JSON line on stderr (the journal)")
	f.StringArrayVar(&o.trusted, "trusted-proxy", nil, "CIDR of proxies in front whose headers about the client (X-Forwarded-*, X-Real-IP...) are kept (repeatable)")
	f.StringArrayVar(&o.balancers, "trusted-balancer", nil, "CIDR of a load balancer in front whose X-Forwarded-For, -Proto and -Port are kept, and no other header about the client, as an ALB sets them (repeatable)")
	f.DurationVar(&o.healthInterval, "health-interval", 2*time.Second, "how often live upstreams are health-checked")
	f.DurationVar(&o.timeouts.ReadHeader, "read-header-timeout", 10*time.Second, "time a client has to send a request's head")
	f.DurationVar(&o.timeouts.Read, "read-timeout", 5*time.Minute, "time a client has to send a whole request")
	f.DurationVar(&o.timeouts.Idle, "idle-timeout", 2*time.Minute, "how long an idle keep-alive connection is kept")
	f.IntVar(&o.timeouts.MaxHeaderBytes, "max-header-bytes", 64<<10, "largest request head accepted (431 past it)")
	f.DurationVar(&o.writeTimeout, "write-timeout", time.Minute, "time a client that stops reading has for each write (extended while it reads)")
	f.BoolVar(&o.fastLoop, "fast-loop", true, "serve plain GET and HEAD requests with the proxy's own HTTP/1.1 loop (false: net/http serves all)")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the proxy's routes, upstreams, health and certificates",
		Long: `Show each host's proxy routes: hosts, upstream, health, requests in
flight, open WebSockets, upstreams still draining and certificate expiry.
With --socket, ask a proxy on this machine over its control socket
instead of the configured hosts over SSH.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxyStatus(cmd.Context(), s, g, o) },
	}
	status.Flags().StringArrayVar(&o.hosts, "host", nil, "ask this host instead of the config's (repeatable)")
	status.Flags().StringVar(&o.socket, "socket", "", "ask the proxy on this machine at this control socket")
	status.Flags().BoolVar(&o.json, "json", false, "print JSON")
	upgrade := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade the proxy on this machine without a gap (systemctl reload runs this)",
		Long: `Have the proxy listening on --control start the hoist binary on disk with
its own arguments and hand it the listening sockets. It returns once the
new process serves; the old one finishes its requests and exits. If the
new process fails to start, the old one keeps serving and this says why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := (&proxy.Client{Socket: o.control}).Upgrade(cmd.Context())
			if err == nil {
				fmt.Fprintf(s.err, "proxy upgraded: process %d serves\n", pid)
			}
			return err
		},
	}
	upgrade.Flags().StringVar(&o.control, "control", host.ProxySocket, "control socket of the proxy to upgrade")
	ca := &cobra.Command{
		Use:   "ca",
		Short: "Print the root certificates of the hosts' internal CAs (tls: internal)",
		Long: `Print, as PEM, the root certificate of each host's proxy CA, for clients
to trust when proxy.tls is internal: for example
  hoist proxy ca > lab-roots.pem
  curl --cacert lab-roots.pem https://app.test/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxyCA(cmd.Context(), s, g, o) },
	}
	ca.Flags().StringArrayVar(&o.hosts, "host", nil, "ask this host instead of the config's (repeatable)")
	cmd.AddCommand(run, status, upgrade, ca)
	return cmd
}

func runProxy(ctx context.Context, s *streams, o *proxyOptions) error {
	if err := platform.Check(platform.Proxy); err != nil {
		return err
	}
	trusted, err := prefixes("--trusted-proxy", o.trusted)
	if err != nil {
		return err
	}
	balancers, err := prefixes("--trusted-balancer", o.balancers)
	if err != nil {
		return err
	}
	issuer, err := proxyIssuer(o)
	if err != nil {
		return err
	}
	exe, err := selfPath()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(s.err, nil))
	var access *slog.Logger
	if o.accessLog {
		access = log.With("log", "access")
	}
	co := issuer.Options(o.storage)
	co.DefaultServerName = o.defaultName
	co.PlanDir, co.PeerListen = o.plans, o.peerListen
	cm, err := certs.New(co)
	if err != nil {
		return err
	}
	if issuer.Internal {
		log.Info("internal CA", "root", certs.InternalRootPath(o.storage))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	return proxy.Run(ctx, proxy.RunOptions{
		HTTP: o.http, HTTPS: o.https, Control: o.control, Metrics: o.metrics, Pprof: o.pprof, Log: log, Timeouts: o.timeouts,
		Exec: append([]string{exe}, os.Args[1:]...), Issuer: issuer.Fingerprint(), FastLoop: o.fastLoop,
		Options: proxy.Options{StatePath: o.state, TrustedProxies: trusted, TrustedBalancers: balancers, AccessLog: access, Certs: cm,
			HealthInterval: o.healthInterval, WriteTimeout: o.writeTimeout},
	})
}

// proxyIssuer is the issuer the proxy runs with: from --issuer, or from
// the flags given by hand.
func proxyIssuer(o *proxyOptions) (certs.Issuer, error) {
	if o.issuer != "" {
		if o.tlsInternal || o.acmeCA != "" || o.acmeEmail != "" || o.acmeRoots != "" {
			return certs.Issuer{}, usage("--issuer names the issuer already: drop --tls-internal and --acme-*")
		}
		return certs.ReadIssuer(o.issuer)
	}
	iss := certs.Issuer{Internal: o.tlsInternal, ACMEEmail: o.acmeEmail, ACMECA: o.acmeCA}
	if o.acmeRoots != "" {
		b, err := os.ReadFile(o.acmeRoots)
		if err != nil {
			return iss, usage("--acme-root: %v", err)
		}
		iss.ACMERoots = string(b)
	}
	if err := iss.Validate(); err != nil {
		return iss, usage("%v: drop --acme-ca and --acme-root, or --tls-internal", err)
	}
	return iss, nil
}

// selfPath is this program's path as it was started, made absolute: an
// upgrade runs what is there then (the binary setup installed since),
// not this process's own executable.
func selfPath() (string, error) {
	p, err := exec.LookPath(os.Args[0])
	if err == nil {
		p, err = filepath.Abs(p)
	}
	if err != nil {
		return "", fmt.Errorf("find own binary for upgrades: %w", err)
	}
	return p, nil
}

// hostProxy is one host's line of `hoist proxy status`.
type hostProxy struct {
	Host   string                  `json:"host"`
	Routes []hostproto.RouteStatus `json:"routes"`
	Error  string                  `json:"error,omitempty"`
}

func runProxyStatus(ctx context.Context, s *streams, g *globalOptions, o *proxyOptions) error {
	var out []hostProxy
	var results []fleet.Result
	if o.socket != "" {
		if len(o.hosts) > 0 {
			return usage("--socket and --host ask different proxies: give one")
		}
		rs, err := (&proxy.Client{Socket: o.socket}).Status(ctx)
		if err != nil {
			return err
		}
		out = []hostProxy{{Host: "local", Routes: rs}}
	} else {
		a, err := loadApp(g, s, o.hosts)
		if err != nil {
			return err
		}
		var routes [][]hostproto.RouteStatus
		routes, results = fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.RouteStatus, error) {
			return a.Client(conn).ProxyStatus(ctx)
		})
		for i, r := range results {
			out = append(out, hostProxy{Host: r.Host, Routes: routes[i], Error: errText(r.Err)})
		}
	}
	for i := range out {
		if out[i].Routes == nil {
			out[i].Routes = []hostproto.RouteStatus{}
		}
	}
	if o.json {
		return writeJSON(s, sliceOut(out, hostProxyOut))
	}
	printProxyStatus(s, out, time.Now())
	if results == nil {
		return nil
	}
	return report(s.err, results, "proxy status")
}

func runProxyCA(ctx context.Context, s *streams, g *globalOptions, o *proxyOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	roots, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) (string, error) {
		return a.Client(conn).ProxyRoot(ctx)
	})
	seen := map[string]bool{}
	for _, pem := range roots {
		// Hosts that share a storage (a copied disk) share a root.
		if pem != "" && !seen[pem] {
			seen[pem] = true
			fmt.Fprint(s.out, pem)
		}
	}
	return report(s.err, results, "proxy ca")
}

// printProxyStatus writes one line per route, then one per draining
// upstream; then one per host and TLS name: the certificate's issuer,
// expiry, how it was obtained and when renewal is due.
func printProxyStatus(s *streams, out []hostProxy, now time.Time) {
	tw := table(s.out)
	fmt.Fprintln(tw, "HOST\tAPP\tHOSTS\tUPSTREAM\tHEALTHY\tIN FLIGHT\tWEBSOCKETS\tTLS")
	var certRows []string
	for _, hp := range out {
		for _, r := range hp.Routes {
			names := strings.Join(r.Hosts, ",") + strings.TrimSuffix(r.PathPrefix, "/")
			healthy := yesNo(r.Healthy)
			if !r.Healthy && r.HealthError != "" {
				healthy += " (" + r.HealthError + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", hp.Host, r.App, names, r.Upstream, healthy, r.InFlight, r.OpenWebSockets, yesNo(r.TLS))
			for _, d := range r.Draining {
				fmt.Fprintf(tw, "%s\t%s\t\t%s\tdraining\t%d\t%d\t\n", hp.Host, r.App, d.Upstream, d.InFlight, d.OpenWebSockets)
			}
			for _, h := range r.Hosts {
				if c, ok := r.Certificates[h]; ok {
					certRows = append(certRows, hp.Host+"\t"+h+"\t"+certRow(c, now))
				}
			}
		}
	}
	tw.Flush()
	if len(certRows) == 0 {
		return
	}
	fmt.Fprintln(s.out)
	tw = table(s.out)
	fmt.Fprintln(tw, "HOST\tNAME\tISSUER\tEXPIRES\tOBTAINED\tRENEWAL DUE")
	for _, row := range certRows {
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// certRow is one certificate's issuer, expiry, how and when it came in,
// and when renewal is due, tab-separated.
func certRow(c hostproto.CertStatus, now time.Time) string {
	if c.Expires.IsZero() {
		pending := "pending"
		if c.Error != "" {
			pending += ": " + c.Error
		}
		return "-\t-\t" + pending + "\t-"
	}
	obtained := c.ObtainedBy
	if !c.ObtainedAt.IsZero() {
		obtained += ", " + c.ObtainedAt.UTC().Format("2006-01-02 15:04")
	}
	if c.Error != "" {
		obtained += " (last try: " + c.Error + ")"
	}
	return fmt.Sprintf("%s\t%s (%s)\t%s\t%s (%s)", c.Issuer, c.Expires.UTC().Format("2006-01-02"), roundDays(c.Expires.Sub(now)),
		obtained, c.RenewAt.UTC().Format("2006-01-02"), roundDays(c.RenewAt.Sub(now)))
}

func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// prefixes parses the networks given to flag.
func prefixes(flag string, cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, t := range cidrs {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, usage("%s %q: %v", flag, t, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
