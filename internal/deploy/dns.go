package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// AppHosts are the app's hosts: hoist.yml's, or else those hoist
// provision made, whose state is in home (returned too; nil otherwise).
func AppHosts(cfg *config.Config, home string) ([]string, *provision.State, error) {
	if len(cfg.Hosts) > 0 || cfg.Infra.Provider == "" {
		return cfg.Hosts, nil, nil
	}
	st, err := provision.LoadState(home, cfg.App, cfg.Infra.Env)
	if err != nil {
		return nil, nil, err
	}
	hosts := st.Targets()
	if len(hosts) == 0 {
		return nil, nil, usererr.New("hoist has provisioned no hosts for %s (%s) yet", cfg.App, cfg.Infra.Env).
			WithHint("run `hoist provision` first")
	}
	return hosts, st, nil
}

// PlanDNS opens the app's zone and plans it: the names of proxy.hosts
// pointing at the hosts, or none (remove). Of a.App it needs Config,
// Home and Secrets alone.
func PlanDNS(ctx context.Context, a *App, takeOver []string, remove bool) (*dns.Zone, *dns.Plan, error) {
	cfg := a.Config
	if !remove && cfg.DNS.On() && !cfg.DNS.KeepsRecords() {
		return nil, nil, usererr.New("dns.records is false: hoist keeps no records for %s", cfg.App).
			WithHint("`hoist dns destroy` removes those it made before")
	}
	z, err := OpenZone(cfg, a.Secrets)
	if err != nil {
		return nil, nil, err
	}
	want := dns.Want{}
	if !remove {
		if want, err = DNSWant(ctx, cfg, a.Home); err != nil {
			return nil, nil, err
		}
	}
	p, err := z.Plan(ctx, want, takeOver)
	return z, p, err
}

// ApplyDNS plans the app's records (PlanDNS) and makes the changes,
// telling step each one as it is made. It returns the plan, nil when
// there was none to apply.
func ApplyDNS(ctx context.Context, a *App, takeOver []string, remove bool, step func(dns.Step)) (*dns.Plan, error) {
	z, p, err := PlanDNS(ctx, a, takeOver, remove)
	if err != nil {
		return nil, err
	}
	return p, z.Apply(ctx, p, step)
}

// SyncDNS applies the app's records after setup and provision, or
// removes them (remove) before destroy, with progress on log; without
// records to keep it does nothing.
func SyncDNS(ctx context.Context, a *App, log io.Writer, remove bool) error {
	if !a.Config.DNS.KeepsRecords() {
		return nil
	}
	z, err := OpenZone(a.Config, a.Secrets)
	if err != nil {
		return err
	}
	want := dns.Want{}
	if !remove {
		if want, err = DNSWant(ctx, a.Config, a.Home); err != nil {
			return err
		}
	}
	p, err := z.Plan(ctx, want, nil)
	if err != nil {
		return err
	}
	return z.Apply(ctx, p, func(st dns.Step) { fmt.Fprintf(log, "dns: %s\n", st) })
}

// OpenZone is the app's zone at its provider, with credentials from the
// environment or the app's secrets.
func OpenZone(cfg *config.Config, sec secrets.Store) (*dns.Zone, error) {
	if !cfg.DNS.On() {
		return nil, usererr.New("hoist.yml has no dns section").
			WithHint("name the app's DNS provider and zone under dns: (docs/dns.md)")
	}
	creds, err := DNSCredentials(cfg, sec)
	if err != nil {
		return nil, err
	}
	p, err := dns.New(cfg.DNS.Provider, creds)
	if err != nil {
		return nil, err
	}
	return &dns.Zone{Provider: cfg.DNS.Provider, Name: cfg.DNS.Zone, Owner: cfg.DNS.OwnerOr(cfg.App), TTL: cfg.DNS.TTL.Duration, API: p}, nil
}

// DNSCredentials gathers the provider's settings and credentials: the
// environment first, then the app's secrets (read only when the
// environment lacks something), then hoist.yml's settings.
func DNSCredentials(cfg *config.Config, sec secrets.Store) (dns.Credentials, error) {
	env := func(name string) (string, bool) { return os.LookupEnv(name) }
	c, err := dns.Gather(cfg.DNS.Provider, cfg.DNS.Settings, env)
	var missing *dns.MissingError
	if !errors.As(err, &missing) {
		return c, asUserError(err)
	}
	if _, serr := os.Stat(sec.Path); serr != nil {
		return c, asUserError(err)
	}
	vals, serr := sec.Load()
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

// DNSWant is the records that point the names of proxy.hosts at the
// app's hosts.
func DNSWant(ctx context.Context, cfg *config.Config, home string) (dns.Want, error) {
	hosts, st, err := AppHosts(cfg, home)
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
		as, err := HostAddresses(ctx, cfg, h)
		if err != nil {
			return t, err
		}
		t.Addresses = append(t.Addresses, as...)
	}
	return t, nil
}

// HostAddresses are the addresses a host's names point at: dns.addresses
// for it, else the address hoist reaches it by (an ssh_config alias's
// HostName, resolved).
func HostAddresses(ctx context.Context, cfg *config.Config, h string) ([]netip.Addr, error) {
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
