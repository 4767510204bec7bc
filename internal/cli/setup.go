package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

type setupOptions struct {
	hosts []string
	// binaries are --hoist-binary's: host binaries of any platforms.
	binaries []string
	adopt    bool
	json     bool
}

func newSetupCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &setupOptions{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare hosts: install hoist, the app's user, directories and units",
		Long: "setup is safe to run again: it changes only what differs. It puts hoist\n" +
			"on each host, built for the host's platform (it runs there in its host\n" +
			"role), creates the app's system user and " + host.DefaultBase + "/APP, and installs\n" +
			"its systemd units. hoist travels compressed, leaves this machine once for\n" +
			"all the hosts of a platform, and skips hosts that have this build.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSetup(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	hoistBinaryFlag(cmd, &o.binaries)
	cmd.Flags().BoolVar(&o.adopt, "adopt", false, "with -d: take hosts set up for no destination (hoist.yml alone) into this destination")
	jsonFlag(cmd, &o.json)
	return cmd
}

// setupResult is one host's entry of `hoist setup`'s results.
type setupResult struct {
	Host string `json:"host"`
	OK   bool   `json:"ok"`
	// App says the app itself was set up there, not only accessories.
	App bool `json:"app"`
	// Installed says this setup put hoist on the host (it had none, or
	// other bytes).
	Installed bool `json:"installed"`
	// Facts are what the host can run, as setup recorded them.
	Facts *hostproto.HostFacts `json:"facts,omitempty"`
	// Accessories are the accessories set up on the host.
	Accessories []string `json:"accessories"`
	// Schedule are the scheduled tasks whose timers run on the host.
	Schedule []string `json:"schedule"`
	Error    string   `json:"error,omitempty"`
}

// setupResults keeps what setup did on each host, in the hosts' order.
type setupResults struct {
	mu    sync.Mutex
	order []string
	byH   map[string]*setupResult
}

func newSetupResults(hosts []string) *setupResults {
	r := &setupResults{order: hosts, byH: map[string]*setupResult{}}
	for _, h := range hosts {
		r.byH[h] = &setupResult{Host: h, Accessories: []string{}, Schedule: []string{}}
	}
	return r
}

// set changes host h's entry.
func (r *setupResults) set(h string, fn func(*setupResult)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byH[h]; e != nil {
		fn(e)
	}
}

// fail records the failed hosts of one step.
func (r *setupResults) fail(results []fleet.Result) {
	for _, res := range results {
		if res.Err != nil {
			r.set(res.Host, func(e *setupResult) {
				if e.Error == "" {
					e.Error = res.Err.Error()
				}
			})
		}
	}
}

func (r *setupResults) list() []setupResult {
	out := make([]setupResult, 0, len(r.order))
	for _, h := range r.order {
		e := *r.byH[h]
		e.OK = e.Error == ""
		out = append(out, e)
	}
	return out
}

func runSetup(ctx context.Context, s *streams, g *globalOptions, o *setupOptions) error {
	if o.adopt && g.destination == "" {
		return usage("--adopt takes hosts into a destination: name it with -d")
	}
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	a.Adopt = o.adopt
	spec, err := setupSpec(a)
	if err != nil {
		return err
	}
	if spec.Store, err = a.storeSpec(); err != nil {
		return err
	}
	plans, err := certPlans(ctx, s, a, len(o.hosts) > 0)
	if err != nil {
		return err
	}
	byHost, err := a.setupAccessorySpecs()
	if err != nil {
		return err
	}
	members := fleet.Connect(ctx, a.setupHosts(), a.Config.SSH.Parallel, a.Dial)
	defer fleet.Close(members)
	if err := fleet.Distinct(members); err != nil {
		return err
	}
	res := newSetupResults(a.setupHosts())
	// done prints the hosts' results for --json, whatever happened, and
	// passes err on.
	done := func(err error) error {
		if o.json {
			if jerr := writeJSON(s, sliceOut(res.list(), setupResultOut)); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}
	// hoist first, on every host at once, since it passes from host to
	// host; a host it did not reach is not set up.
	for h, installed := range a.installHoist(ctx, s, g, members, o.binaries) {
		res.set(h, func(e *setupResult) { e.Installed = installed })
	}
	conns, results := fleet.MapMembers(ctx, members, a.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) ([]accessory.Connection, error) {
		if slices.Contains(a.Hosts, h) {
			hs := *spec
			hs.Certs = plans[h]
			if hs.Certs != nil && len(hs.Certs.Listen) > 0 {
				p, err := issuerListen(ctx, conn, hs.Certs)
				if err != nil {
					return nil, err
				}
				hs.Certs = p
			}
			facts, err := a.Client(conn).Setup(ctx, &hs)
			if err != nil {
				return nil, err
			}
			res.set(h, func(e *setupResult) { e.App, e.Facts = true, &facts })
			glibc := "no glibc"
			if facts.GLIBC != "" {
				glibc = "glibc " + facts.GLIBC
			}
			a.logf(s, h, "ready for %s (%s/%s, %s)", a.Config.App, facts.OS, facts.Arch, glibc)
			tasks, err := a.installSchedule(ctx, s, g, a.Client(conn), h, spec)
			if err != nil {
				return nil, err
			}
			res.set(h, func(e *setupResult) { e.Schedule = tasks })
		}
		return a.setupAccessories(ctx, s, h, byHost[h], conn, func(name string) {
			res.set(h, func(e *setupResult) { e.Accessories = append(e.Accessories, name) })
		})
	})
	res.fail(results)
	if err := report(s.err, results, "setup"); err != nil {
		return done(err)
	}
	var all []accessory.Connection
	for _, c := range conns {
		all = append(all, c...)
	}
	results = a.sendAccessoriesEnv(ctx, members, all)
	res.fail(results)
	if err := report(s.err, results, "setup"); err != nil {
		return done(err)
	}
	// Last: the record that this setup went through, which a setup cut
	// short never leaves (hoist provision then sets the host up again).
	fps, err := a.setupFingerprints(spec, byHost, o.binaries)
	if err != nil {
		return done(err)
	}
	results = fleet.EachMember(ctx, appMembers(a, members), a.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
		return a.Client(conn).SetupDone(ctx, fps[h])
	})
	res.fail(results)
	if err := report(s.err, results, "setup"); err != nil {
		return done(err)
	}
	a.warnBackups(ctx, s)
	if len(o.hosts) > 0 && a.Config.DNS.KeepsRecords() {
		// The records point at every host of hoist.yml, not at the few
		// named here.
		fmt.Fprintln(s.err, "dns: records left as they are with --host; `hoist dns apply` sets them")
		return done(nil)
	}
	return done(syncDNS(ctx, a.Config, a.Repo, s.err, false))
}

// appMembers are the members that run the app (not only accessories).
func appMembers(a *app, members []fleet.Member) []fleet.Member {
	var out []fleet.Member
	for _, m := range members {
		if slices.Contains(a.Hosts, m.Host) {
			out = append(out, m)
		}
	}
	return out
}

// setupSpec is what setup tells the hosts about the app, besides the
// certificate plans: the same for a setup and for the check of whether
// one is due (staleSetups), or every provision would set the hosts up
// again.
func setupSpec(a *app) (*hostproto.Spec, error) {
	spec := deploy.Spec(a.Config)
	var err error
	if spec.ACMERoots, err = acmeRoots(a); err != nil {
		return nil, err
	}
	if spec.TrustedProxies, spec.TrustedBalancers, err = trustedProxies(a.Config); err != nil {
		return nil, err
	}
	return spec, nil
}

// setupFingerprints are what a setup of each app host with this hoist
// (and the host binaries given), spec and the accessories of byHost
// amounts to: a host that recorded another (or none) was not set up so.
// The certificate plans are left out: their peer secret is new at every
// setup.
func (a *app) setupFingerprints(spec *hostproto.Spec, byHost map[string][]*accessory.Spec, given []string) (map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	bins := sha256.New()
	for _, p := range append([]string{self}, given...) {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read hoist binary: %w", err)
		}
		_, err = io.Copy(bins, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read hoist binary: %w", err)
		}
	}
	binSum := bins.Sum(nil)
	s := *spec
	s.Certs = nil
	out := map[string]string{}
	for _, h := range a.Hosts {
		b, err := json.Marshal(struct {
			Binary      string            `json:"binary"`
			Destination string            `json:"destination"`
			Spec        hostproto.Spec    `json:"spec"`
			Accessories []*accessory.Spec `json:"accessories"`
			TLS         string            `json:"tls"`
			Schedule    []hostproto.Task  `json:"schedule,omitempty"`
		}{hex.EncodeToString(binSum[:]), a.Config.Destination, s, byHost[h], a.Config.Proxy.TLS.Mode, a.tasksFor(h)})
		if err != nil {
			return nil, fmt.Errorf("setup fingerprint: %w", err)
		}
		sum := sha256.Sum256(b)
		out[h] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out, nil
}

// staleSetups says, for each app host whose last complete setup is not
// the one runSetup with o would make, why: no hoist, no record (a setup
// cut short), or another one. A host that cannot be asked is left out
// with a warning.
func staleSetups(ctx context.Context, s *streams, g *globalOptions, o *setupOptions) (map[string]string, error) {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return nil, err
	}
	spec, err := setupSpec(a)
	if err != nil {
		return nil, err
	}
	if spec.Store, err = a.storeSpec(); err != nil {
		return nil, err
	}
	byHost, err := a.setupAccessorySpecs()
	if err != nil {
		return nil, err
	}
	fps, err := a.setupFingerprints(spec, byHost, o.binaries)
	if err != nil {
		return nil, err
	}
	sts, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) (*hostproto.Status, error) {
		return a.Client(conn).Status(ctx)
	})
	stale := map[string]string{}
	for i, r := range results {
		switch st := sts[i]; {
		case errors.Is(r.Err, hostclient.ErrNotInstalled):
			stale[r.Host] = "hoist is not installed"
		case r.Err != nil:
			fmt.Fprintf(s.err, "%s %s: cannot tell how it was set up: %v\n", paint(s.err, "warning:", yellow), r.Host, r.Err)
		case st.Setup == nil:
			stale[r.Host] = "no setup went through"
		case st.Setup.Fingerprint != fps[r.Host]:
			stale[r.Host] = "set up on " + localTime(st.Setup.At) + " with another hoist or hoist.yml"
		}
	}
	return stale, nil
}

func (a *app) logf(s *streams, h, format string, args ...any) {
	a.LogMu.Lock()
	defer a.LogMu.Unlock()
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
	cfg := a.Config
	plans := map[string]*certs.Plan{}
	if cfg.Proxy.TLS.Mode != config.TLSACME {
		for _, h := range a.Hosts {
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
			creds, err := dnsCredentials(cfg, a.Repo)
			if err != nil {
				return nil, err
			}
			dnsPlan = &certs.DNSPlan{Provider: cfg.DNS.Provider, Zone: cfg.DNS.Zone, Credentials: creds, Resolvers: cfg.DNS.Resolvers}
		}
	}
	issuer := a.Hosts[0]
	plans[issuer] = &certs.Plan{Names: names, DNS: dnsPlan}
	if len(a.Hosts) == 1 {
		return plans, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	// Every host's peer address, in the order they take over obtaining
	// the names when the hosts before them are gone: the issuer first.
	var peers []string
	for _, h := range a.Hosts {
		addrs, err := hostAddresses(ctx, cfg, h)
		if err != nil {
			return nil, err
		}
		peers = append(peers, net.JoinHostPort(preferV4(addrs).String(), strconv.Itoa(certs.DefaultPeerPort)))
	}
	from := peers[0]
	peerSecret := base64.StdEncoding.EncodeToString(secret)
	plans[issuer].PeerSecret, plans[issuer].Peers, plans[issuer].Self = peerSecret, peers, from
	// Each host's channel listens where its peers dial; setup adds the
	// address its SSH connection reached (issuerListen), the host's own
	// behind a NAT.
	plans[issuer].Listen = []string{from}
	for i := range plans[issuer].Names {
		plans[issuer].Names[i].Peers = true
	}
	for i, h := range a.Hosts[1:] {
		p := &certs.Plan{PeerSecret: peerSecret, Peers: peers, Self: peers[i+1], Listen: []string{peers[i+1]}}
		for _, n := range names {
			p.Names = append(p.Names, certs.PlanName{Name: n.Name, Challenge: n.Challenge, From: from})
		}
		plans[h] = p
	}
	return plans, nil
}

// trustedProxies are the networks whose headers about the client the
// hosts' proxies keep for the app: all of them from
// proxy.trusted_proxies, and X-Forwarded-For, -Proto and -Port alone
// from the balancer hoist provisioned in front of the hosts (an ALB
// passes the client's X-Real-IP, X-Forwarded-Host and the start of its
// X-Forwarded-For on as the client wrote them).
func trustedProxies(cfg *config.Config) (proxies, balancers []string, err error) {
	proxies = unique(append([]string(nil), cfg.Proxy.TrustedProxies...))
	if cfg.Infra.Provider != "" && len(cfg.Proxy.Hosts) > 0 {
		st, err := provision.LoadState(hoistHome(), cfg.App, cfg.Infra.Env)
		if err != nil {
			return nil, nil, err
		}
		balancers = unique(provision.BalancerNetworks(provision.SpecFrom(cfg), st))
	}
	return proxies, balancers, nil
}

// issuerListen adds to a host's plan the host's address that this
// SSH connection reached: behind a NAT (a cloud's public address) the
// address the peers dial is not one the host can listen on.
func issuerListen(ctx context.Context, conn transport.Conn, p *certs.Plan) (*certs.Plan, error) {
	local, err := hostclient.SSHAddr(ctx, conn)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(local); err == nil {
		local = ip.Unmap().WithZone("").String()
	}
	own := net.JoinHostPort(local, strconv.Itoa(certs.DefaultPeerPort))
	if slices.Contains(p.Listen, own) {
		return p, nil
	}
	q := *p
	q.Listen = append(slices.Clone(p.Listen), own)
	return &q, nil
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

// acmeRoots reads the PEM roots proxy.acme_root names, relative to
// hoist.yml; "" if none.
func acmeRoots(a *app) (string, error) {
	name := a.Config.Proxy.ACMERoot
	if name == "" {
		return "", nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.Repo, name)
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
