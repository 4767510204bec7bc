package cli

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type setupOptions struct {
	hosts  []string
	binary string
}

func newSetupCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &setupOptions{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare hosts: install hoist, the app's user, directories and units",
		Long: "setup is safe to run again: it changes only what differs. It puts this\n" +
			"hoist binary on each host (it runs there in its host role), creates the\n" +
			"app's system user and " + host.DefaultBase + "/APP, and installs its systemd units.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSetup(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	cmd.Flags().StringVar(&o.binary, "hoist-binary", "", "hoist binary to install on hosts (default: this one; it must match the hosts' OS/arch)")
	return cmd
}

func runSetup(ctx context.Context, s *streams, g *globalOptions, o *setupOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	bin := o.binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("find own binary: %w", err)
		}
	}
	spec := deploy.Spec(a.cfg)
	if spec.ACMERoots, err = acmeRoots(a); err != nil {
		return err
	}
	plans, err := certPlans(ctx, s, a, len(o.hosts) > 0)
	if err != nil {
		return err
	}
	byHost, err := a.accessoriesByHost()
	if err != nil {
		return err
	}
	members := fleet.Connect(ctx, a.setupHosts(), a.cfg.SSH.Parallel, a.dial)
	defer fleet.Close(members)
	if err := fleet.Distinct(members); err != nil {
		return err
	}
	conns, results := fleet.MapMembers(ctx, members, a.cfg.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) ([]accessory.Connection, error) {
		if err := a.installHoist(ctx, s, h, conn, bin, o.binary == ""); err != nil {
			return nil, err
		}
		if slices.Contains(a.hosts, h) {
			hs := *spec
			hs.Certs = plans[h]
			facts, err := a.client(conn).Setup(ctx, &hs)
			if err != nil {
				return nil, err
			}
			glibc := "no glibc"
			if facts.GLIBC != "" {
				glibc = "glibc " + facts.GLIBC
			}
			a.logf(s, h, "ready for %s (%s/%s, %s)", a.cfg.App, facts.OS, facts.Arch, glibc)
		}
		return a.setupAccessories(ctx, s, h, byHost[h], conn)
	})
	if err := report(s.err, results, "setup"); err != nil {
		return err
	}
	var all []accessory.Connection
	for _, c := range conns {
		all = append(all, c...)
	}
	if err := report(s.err, a.sendAccessoriesEnv(ctx, members, all), "setup"); err != nil {
		return err
	}
	if len(o.hosts) > 0 && a.cfg.DNS.KeepsRecords() {
		// The records point at every host of hoist.yml, not at the few
		// named here.
		fmt.Fprintln(s.err, "dns: records left as they are with --host; `hoist dns apply` sets them")
		return nil
	}
	return syncDNS(ctx, a.cfg, a.repo, s.err, false)
}

// installHoist puts bin on host h unless it has the same bytes; check
// refuses a host of another platform than this hoist's.
func (a *app) installHoist(ctx context.Context, s *streams, h string, conn transport.Conn, bin string, check bool) error {
	if check {
		plat, err := host.Platform(ctx, conn)
		if err != nil {
			return err
		}
		if plat != selfPlatform() {
			return usererr.New("host is %s but this hoist is built for %s", plat, selfPlatform()).
				WithHint("pass --hoist-binary with a hoist built for %s (GOOS/GOARCH)", plat)
		}
	}
	installed, err := a.client(conn).InstallBinary(ctx, bin)
	if err != nil {
		return err
	}
	if installed {
		a.logf(s, h, "installed hoist at %s", host.BinPath)
	}
	return nil
}

func (a *app) logf(s *streams, h, format string, args ...any) {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	fmt.Fprintf(s.err, "%s: %s\n", h, fmt.Sprintf(format, args...))
}

// certPlans are the certificate plans of the hosts: with tls: acme, the
// first host of hoist.yml obtains each name (by its challenge, with the
// DNS provider's credentials for DNS-01) and the others copy it from
// that host over the peer channel, with a secret made new at each setup;
// otherwise none, and a plan left from before is removed. With --host on
// an app of several hosts the plans are left as they are: the secret
// must reach every host at once.
func certPlans(ctx context.Context, s *streams, a *app, hostFlags bool) (map[string]*certs.Plan, error) {
	cfg := a.cfg
	plans := map[string]*certs.Plan{}
	if cfg.Proxy.TLS.Mode != config.TLSACME {
		for _, h := range a.hosts {
			plans[h] = &certs.Plan{}
		}
		return plans, nil
	}
	if hostFlags && len(cfg.Hosts) > 1 {
		fmt.Fprintln(s.err, "certificates: the hosts' plans are left as they are with --host; run hoist setup without it to change them")
		return nil, nil
	}
	var names []certs.PlanName
	var dnsPlan *certs.DNSPlan
	for _, n := range cfg.Proxy.Hosts {
		ch := cfg.ChallengeFor(n)
		names = append(names, certs.PlanName{Name: n, Challenge: ch})
		if ch == config.ChallengeDNS && dnsPlan == nil {
			creds, err := dnsCredentials(cfg, a.repo)
			if err != nil {
				return nil, err
			}
			dnsPlan = &certs.DNSPlan{Provider: cfg.DNS.Provider, Zone: cfg.DNS.Zone, Credentials: creds, Resolvers: cfg.DNS.Resolvers}
		}
	}
	issuer := a.hosts[0]
	plans[issuer] = &certs.Plan{Names: names, DNS: dnsPlan}
	if len(a.hosts) == 1 {
		return plans, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	addrs, err := hostAddresses(ctx, cfg, issuer)
	if err != nil {
		return nil, err
	}
	from := net.JoinHostPort(preferV4(addrs).String(), strconv.Itoa(certs.DefaultPeerPort))
	peerSecret := base64.StdEncoding.EncodeToString(secret)
	plans[issuer].PeerSecret = peerSecret
	for i := range plans[issuer].Names {
		plans[issuer].Names[i].Peers = true
	}
	for _, h := range a.hosts[1:] {
		p := &certs.Plan{PeerSecret: peerSecret}
		for _, n := range names {
			p.Names = append(p.Names, certs.PlanName{Name: n.Name, Challenge: n.Challenge, From: from})
		}
		plans[h] = p
	}
	return plans, nil
}

// preferV4 is the first IPv4 address of addrs, or else the first.
func preferV4(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Is4() {
			return a
		}
	}
	return addrs[0]
}

func selfPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// acmeRoots reads the PEM roots proxy.acme_root names, relative to
// hoist.yml; "" if none.
func acmeRoots(a *app) (string, error) {
	name := a.cfg.Proxy.ACMERoot
	if name == "" {
		return "", nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.repo, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usererr.Wrap(err, "proxy.acme_root").WithHint("give a PEM file of the ACME CA's roots, relative to hoist.yml")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return "", usererr.New("proxy.acme_root: %s holds no PEM certificate", path)
	}
	return string(b), nil
}
