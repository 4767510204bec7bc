package deploy

import (
	"context"
	"crypto/ed25519"
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

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostbin"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/signkey"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// SetupOptions says how Setup works on an App's hosts.
type SetupOptions struct {
	// Log gets the progress: a line per host and step, prefixed with
	// the host, and what setup leaves as it is.
	Log io.Writer
	// Finder finds the hoist each host platform gets; its Given are
	// the host binaries named (--hoist-binary), part of the setup's
	// fingerprint.
	Finder *hostbin.Finder
	// CacheDir keeps the host binaries packed for the hosts.
	CacheDir string
	// Named says the hosts were named (--host), not hoist.yml's all:
	// the certificate plans and DNS records, which are the whole
	// fleet's, are left as they are.
	Named bool
	// Verbose shows the log of each host that serves hoist to others.
	Verbose bool
}

// SetupResult is what one host has after a setup.
type SetupResult struct {
	Host string
	// Installed says this setup put hoist on the host (it had none, or
	// other bytes).
	Installed bool
	// App says the app itself was set up there, not only accessories.
	App bool
	// Facts are what the host can run, as setup recorded them.
	Facts *hostproto.HostFacts
	// Schedule are the scheduled tasks whose timers run on the host.
	Schedule []string
	// Accessories are the accessories set up on the host.
	Accessories []string
	// Err is the first error of the host; nil when it is set up.
	Err error
}

// HostsError is a step of an operation that failed on some hosts:
// Results are the step's, every host it worked on.
type HostsError struct {
	Verb    string
	Results []fleet.Result
}

func (e *HostsError) Error() string {
	return fmt.Sprintf("%s failed on %d of %d host(s)", e.Verb, len(fleet.Failed(e.Results)), len(e.Results))
}

// setupResults keeps what setup did on each host, in the hosts' order.
type setupResults struct {
	mu    sync.Mutex
	order []string
	byH   map[string]*SetupResult
}

func newSetupResults(hosts []string) *setupResults {
	r := &setupResults{order: hosts, byH: map[string]*SetupResult{}}
	for _, h := range hosts {
		r.byH[h] = &SetupResult{Host: h, Accessories: []string{}, Schedule: []string{}}
	}
	return r
}

// set changes host h's entry.
func (r *setupResults) set(h string, fn func(*SetupResult)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byH[h]; e != nil {
		fn(e)
	}
}

// fail records the failed hosts of one step, and says whether there
// were any.
func (r *setupResults) fail(results []fleet.Result) bool {
	failed := false
	for _, res := range results {
		if res.Err != nil {
			failed = true
			r.set(res.Host, func(e *SetupResult) {
				if e.Err == nil {
					e.Err = res.Err
				}
			})
		}
	}
	return failed
}

func (r *setupResults) list() []SetupResult {
	out := make([]SetupResult, 0, len(r.order))
	for _, h := range r.order {
		out = append(out, *r.byH[h])
	}
	return out
}

// Setup prepares the app's hosts and its accessories' (SetupHosts):
// hoist on each, the app's user, directories, units, certificate plans
// and schedule on the app's hosts, the accessories on theirs and their
// URLs in the app's environment, then the record that the setup went
// through, and last the DNS records. It returns what each host has now,
// in SetupHosts' order, or nil when it stopped before it reached any;
// a step that failed on some hosts is a *HostsError.
func Setup(ctx context.Context, a *App, o SetupOptions) ([]SetupResult, error) {
	spec, err := SetupSpec(a)
	if err != nil {
		return nil, err
	}
	if spec.Store, err = a.StoreSpec(); err != nil {
		return nil, err
	}
	plans, err := CertPlans(ctx, a, o.Log, o.Named)
	if err != nil {
		return nil, err
	}
	byHost, err := a.SetupAccessorySpecs()
	if err != nil {
		return nil, err
	}
	members := fleet.Connect(ctx, a.SetupHosts(), a.Config.SSH.Parallel, a.Dial)
	defer fleet.Close(members)
	if err := fleet.Distinct(members); err != nil {
		return nil, err
	}
	res := newSetupResults(a.SetupHosts())
	// failed records a step's failed hosts, and stops the setup there.
	failed := func(results []fleet.Result) error {
		if res.fail(results) {
			return &HostsError{Verb: "setup", Results: results}
		}
		return nil
	}
	// hoist first, on every host at once, since it passes from host to
	// host; a host it did not reach is not set up.
	for h, installed := range a.installHoist(ctx, o, members) {
		res.set(h, func(e *SetupResult) { e.Installed = installed })
	}
	conns, results := fleet.MapMembers(ctx, members, a.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) ([]hostproto.AccessoryConnection, error) {
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
			res.set(h, func(e *SetupResult) { e.App, e.Facts = true, &facts })
			glibc := "no glibc"
			if facts.GLIBC != "" {
				glibc = "glibc " + facts.GLIBC
			}
			a.Logf(o.Log, h, "ready for %s (%s/%s, %s)", a.Config.App, facts.OS, facts.Arch, glibc)
			tasks, err := a.InstallSchedule(ctx, o.Log, a.Client(conn), h, spec)
			if err != nil {
				return nil, err
			}
			res.set(h, func(e *SetupResult) { e.Schedule = tasks })
		}
		return a.setupAccessories(ctx, o.Log, h, byHost[h], conn, func(name string) {
			res.set(h, func(e *SetupResult) { e.Accessories = append(e.Accessories, name) })
		})
	})
	if err := failed(results); err != nil {
		return res.list(), err
	}
	var all []hostproto.AccessoryConnection
	for _, c := range conns {
		all = append(all, c...)
	}
	if err := failed(a.sendAccessoriesEnv(ctx, members, all)); err != nil {
		return res.list(), err
	}
	// Last: the record that this setup went through, which a setup cut
	// short never leaves (hoist provision then sets the host up again).
	var given []string
	if o.Finder != nil {
		given = o.Finder.Given
	}
	fps, err := a.SetupFingerprints(spec, byHost, given)
	if err != nil {
		return res.list(), err
	}
	results = fleet.EachMember(ctx, a.appMembers(members), a.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) error {
		return a.Client(conn).SetupDone(ctx, fps[h])
	})
	if err := failed(results); err != nil {
		return res.list(), err
	}
	a.WarnBackups(ctx, o.Log)
	if o.Named && a.Config.DNS.KeepsRecords() {
		// The records point at every host of hoist.yml, not at the few
		// named here.
		fmt.Fprintln(o.Log, "dns: records left as they are with --host; `hoist dns apply` sets them")
		return res.list(), nil
	}
	return res.list(), SyncDNS(ctx, a, o.Log, false)
}

// appMembers are the members that run the app (not only accessories).
func (a *App) appMembers(members []fleet.Member) []fleet.Member {
	var out []fleet.Member
	for _, m := range members {
		if slices.Contains(a.Hosts, m.Host) {
			out = append(out, m)
		}
	}
	return out
}

// installHoist puts on each member the hoist of its platform, and says
// which hosts got a new one; a member it could not be put on gets the
// error, and is left out of what follows.
func (a *App) installHoist(ctx context.Context, so SetupOptions, members []fleet.Member) map[string]bool {
	var ts []hostbin.Target
	var idx []int
	for i, m := range members {
		if m.Err == nil {
			ts = append(ts, hostbin.Target{Host: m.Host, Conn: m.Conn, Client: a.Client(m.Conn)})
			idx = append(idx, i)
		}
	}
	o := hostbin.Options{
		Finder: so.Finder, Parallel: a.Config.SSH.Parallel,
		Relay: a.Config.Deploy.RelayOn(), CacheDir: filepath.Join(so.CacheDir, "hoist-bin"),
		Logf: func(h, format string, args ...any) { a.Logf(so.Log, h, format, args...) },
	}
	if so.Verbose {
		o.ServeLog = func(h string) io.Writer { return &fleet.PrefixWriter{W: so.Log, Prefix: h + ": ", Mu: a.LogMu} }
	}
	installed := make(map[string]bool, len(ts))
	for k, r := range hostbin.Install(ctx, o, ts) {
		m := &members[idx[k]]
		if r.Err != nil {
			m.Conn.Close()
			m.Err = r.Err
		}
		installed[m.Host] = r.Installed()
	}
	return installed
}

// SetupSpec is what setup tells the hosts about the app, besides the
// certificate plans and the store: the same for a setup and for the
// check of whether one is due (StaleSetups), or every provision would
// set the hosts up again.
func SetupSpec(a *App) (*hostproto.Spec, error) {
	spec := Spec(a.Config)
	var err error
	if spec.ACMERoots, err = ACMERoots(a); err != nil {
		return nil, err
	}
	if spec.TrustedProxies, spec.TrustedBalancers, err = TrustedProxies(a.Config, a.Home); err != nil {
		return nil, err
	}
	return spec, nil
}

// SetupFingerprints are what a setup of each app host with this hoist
// (and the host binaries given), spec and the accessories of byHost
// amounts to: a host that recorded another (or none) was not set up so.
// The certificate plans are left out: their peer secret is new at every
// setup.
func (a *App) SetupFingerprints(spec *hostproto.Spec, byHost map[string][]*hostproto.AccessorySpec, given []string) (map[string]string, error) {
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
			Binary      string                     `json:"binary"`
			Destination string                     `json:"destination"`
			Spec        hostproto.Spec             `json:"spec"`
			Accessories []*hostproto.AccessorySpec `json:"accessories"`
			TLS         string                     `json:"tls"`
			Schedule    []hostproto.Task           `json:"schedule,omitempty"`
		}{hex.EncodeToString(binSum[:]), a.Config.Destination, s, byHost[h], a.Config.Proxy.TLS.Mode, a.TasksFor(h)})
		if err != nil {
			return nil, fmt.Errorf("setup fingerprint: %w", err)
		}
		sum := sha256.Sum256(b)
		out[h] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out, nil
}

// StaleSetups says, for each app host whose last complete setup is not
// the one Setup with the host binaries given would make, why: no hoist,
// no record (a setup cut short), or another one. The hosts that cannot
// be asked are left out, and returned with their errors.
func StaleSetups(ctx context.Context, a *App, given []string) (stale map[string]string, unasked []fleet.Result, err error) {
	spec, err := SetupSpec(a)
	if err != nil {
		return nil, nil, err
	}
	if spec.Store, err = a.StoreSpec(); err != nil {
		return nil, nil, err
	}
	byHost, err := a.SetupAccessorySpecs()
	if err != nil {
		return nil, nil, err
	}
	fps, err := a.SetupFingerprints(spec, byHost, given)
	if err != nil {
		return nil, nil, err
	}
	sts, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) (*hostproto.Status, error) {
		return a.Client(conn).Status(ctx)
	})
	stale = map[string]string{}
	for i, r := range results {
		switch st := sts[i]; {
		case errors.Is(r.Err, hostclient.ErrNotInstalled):
			stale[r.Host] = "hoist is not installed"
		case r.Err != nil:
			unasked = append(unasked, r)
		case st.Setup == nil:
			stale[r.Host] = "no setup went through"
		case st.Setup.Fingerprint != fps[r.Host]:
			stale[r.Host] = "set up on " + st.Setup.At.Local().Format("2006-01-02 15:04:05") + " with another hoist or hoist.yml"
		}
	}
	return stale, unasked, nil
}

// Logf writes one of host h's lines to log.
func (a *App) Logf(log io.Writer, h, format string, args ...any) {
	if a.LogMu != nil {
		a.LogMu.Lock()
		defer a.LogMu.Unlock()
	}
	fmt.Fprintf(log, "%s: %s\n", h, fmt.Sprintf(format, args...))
}

// CertPlans are the certificate plans of the hosts: with tls: acme, the
// first host of hoist.yml obtains each name (by its challenge, with the
// DNS provider's credentials for DNS-01) and the others copy it from
// that host over the peer channel, with a secret made new at each setup;
// otherwise none, and a plan left from before is removed. With hosts
// named (--host) on an app of several hosts the plans are left as they
// are, which log says: the secret must reach every host at once.
func CertPlans(ctx context.Context, a *App, log io.Writer, named bool) (map[string]*hostproto.CertPlan, error) {
	cfg := a.Config
	plans := map[string]*hostproto.CertPlan{}
	if cfg.Proxy.TLS.Mode != config.TLSACME {
		for _, h := range a.Hosts {
			plans[h] = &hostproto.CertPlan{}
		}
		return plans, nil
	}
	if named && len(cfg.Hosts) > 1 {
		fmt.Fprintln(log, "certificates: the hosts' plans are left as they are with --host; run hoist setup without it to change them")
		return nil, nil
	}
	var names []hostproto.CertPlanName
	var dnsPlan *hostproto.DNSPlan
	for _, n := range cfg.Proxy.Hosts {
		ch := cfg.ChallengeFor(n)
		names = append(names, hostproto.CertPlanName{Name: n, Challenge: ch})
		if ch == config.ChallengeDNS && dnsPlan == nil {
			creds, err := DNSCredentials(cfg, a.Secrets)
			if err != nil {
				return nil, err
			}
			dnsPlan = &hostproto.DNSPlan{Provider: cfg.DNS.Provider, Zone: cfg.DNS.Zone, Credentials: creds, Resolvers: cfg.DNS.Resolvers}
		}
	}
	issuer := a.Hosts[0]
	plans[issuer] = &hostproto.CertPlan{Names: names, DNS: dnsPlan}
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
		addrs, err := HostAddresses(ctx, cfg, h)
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
		p := &hostproto.CertPlan{PeerSecret: peerSecret, Peers: peers, Self: peers[i+1], Listen: []string{peers[i+1]}}
		for _, n := range names {
			p.Names = append(p.Names, hostproto.CertPlanName{Name: n.Name, Challenge: n.Challenge, From: from})
		}
		plans[h] = p
	}
	return plans, nil
}

// TrustedProxies are the networks whose headers about the client the
// hosts' proxies keep for the app: all of them from
// proxy.trusted_proxies, and X-Forwarded-For, -Proto and -Port alone
// from the balancer hoist provisioned in front of the hosts (an ALB
// passes the client's X-Real-IP, X-Forwarded-Host and the start of its
// X-Forwarded-For on as the client wrote them). home holds what hoist
// provisioned.
func TrustedProxies(cfg *config.Config, home string) (proxies, balancers []string, err error) {
	proxies = Unique(append([]string(nil), cfg.Proxy.TrustedProxies...))
	if cfg.Infra.Provider != "" && len(cfg.Proxy.Hosts) > 0 {
		st, err := provision.LoadState(home, cfg.App, cfg.Infra.Env)
		if err != nil {
			return nil, nil, err
		}
		balancers = Unique(provision.BalancerNetworks(provision.SpecFrom(cfg), st))
	}
	return proxies, balancers, nil
}

// issuerListen adds to a host's plan the host's address that this
// SSH connection reached: behind a NAT (a cloud's public address) the
// address the peers dial is not one the host can listen on.
func issuerListen(ctx context.Context, conn transport.Conn, p *hostproto.CertPlan) (*hostproto.CertPlan, error) {
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

// ACMERoots reads the PEM roots proxy.acme_root names, relative to
// hoist.yml; "" if none.
func ACMERoots(a *App) (string, error) {
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

// StoreLocation is the bucket of hoist.yml's store, with the
// credentials its secrets hold when it names them.
func StoreLocation(cfg *config.Config, sec secrets.Store) (bucket.Location, error) {
	st := cfg.Store
	loc := bucket.Location{Bucket: st.Bucket, Prefix: st.Prefix, Region: st.Region, Endpoint: st.Endpoint}
	if st.AccessKeySecret == "" {
		return loc, nil
	}
	vals, err := sec.Load()
	if err != nil {
		return loc, err
	}
	loc.AccessKeyID, loc.SecretAccessKey = vals[st.AccessKeySecret], vals[st.SecretKeySecret]
	if loc.AccessKeyID == "" || loc.SecretAccessKey == "" {
		return loc, usererr.New("store names secrets %s and %s, which are not both set", st.AccessKeySecret, st.SecretKeySecret).
			WithHint("hoist secrets set %s, and %s", st.AccessKeySecret, st.SecretKeySecret)
	}
	return loc, nil
}

// StorePublicKey is hoist.yml's store.public_key, which setup, deploy
// and rollback need.
func StorePublicKey(cfg *config.Config) (ed25519.PublicKey, error) {
	if cfg.Store.PublicKey == "" {
		return nil, usererr.New("store.public_key is not set in %s: the key whose records the hosts trust", ConfigName(cfg)).
			WithHint("run `hoist store key`: it makes the signing key and prints the line to put there")
	}
	return signkey.ParsePublicKey(cfg.Store.PublicKey) // checked when hoist.yml was read
}

// StoreSpec is what setup gives each host of the store: a spec without
// a bucket when hoist.yml has none, which removes one set up before.
func (a *App) StoreSpec() (*hostproto.StoreSpec, error) {
	if !a.Config.Store.On() {
		return &hostproto.StoreSpec{}, nil
	}
	if _, err := StorePublicKey(a.Config); err != nil {
		return nil, err
	}
	loc, err := StoreLocation(a.Config, a.Secrets)
	if err != nil {
		return nil, err
	}
	return &hostproto.StoreSpec{Location: loc, PublicKey: a.Config.Store.PublicKey}, nil
}

// ConfigName names the file a setting of cfg is in, for errors.
func ConfigName(cfg *config.Config) string {
	if cfg.Destination != "" {
		return "destination " + cfg.Destination
	}
	return config.FileName
}

// Unique returns list without repeats, in its order.
func Unique(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
