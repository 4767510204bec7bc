package cli

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/secrets"
)

const dnsApp = `version: 1
app: shop
hosts: [10.0.0.1, web2]
build:
  command: make
  output: d
run:
  command: ./x
proxy:
  hosts: [www.hoist.test, "*.apps.hoist.test"]
dns:
  provider: rfc2136
  zone: hoist.test
  addresses:
    web2: [10.0.0.2, "2001:db8::2"]
`

// writeDNSApp writes an app with a dns section, its credentials unset.
func writeDNSApp(t *testing.T, yml string) (string, *config.Config) {
	t.Helper()
	dir := writeApp(t, yml)
	cfg, err := config.Load(filepath.Join(dir, "hoist.yml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_SECRETS_KEY", filepath.Join(t.TempDir(), "key.age"))
	for _, v := range dns.Variables("rfc2136") {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return dir, cfg
}

// TestDNSCredentials takes credentials from the environment first, then
// from hoist secrets under HOIST_DNS_, and names what is missing.
func TestDNSCredentials(t *testing.T) {
	dir, cfg := writeDNSApp(t, dnsApp)
	_, err := deploy.DNSCredentials(cfg, secretsStore(cfg, dir))
	if err == nil || !strings.Contains(err.Error(), "DNS provider rfc2136 needs RFC2136_SERVER (or dns.settings.server), RFC2136_KEY_NAME (or dns.settings.key_name), RFC2136_KEY") {
		t.Fatalf("without credentials: %v", err)
	}
	st := secretsStore(cfg, dir)
	if err := st.Save(map[string]string{"HOIST_DNS_RFC2136_KEY": "from-secrets", "HOIST_DNS_RFC2136_KEY_NAME": "k", "DATABASE_URL": "postgres://"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RFC2136_SERVER", "127.0.0.1:53")
	t.Setenv("RFC2136_KEY_NAME", "from-env")
	c, err := deploy.DNSCredentials(cfg, secretsStore(cfg, dir))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dns.Credentials{"server": "127.0.0.1:53", "key_name": "from-env", "key": "from-secrets"}, c); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
}

// TestAppSecretsLeaveOutDNSCredentials: the app's environment file never
// holds hoist's DNS credentials.
func TestAppSecretsLeaveOutDNSCredentials(t *testing.T) {
	got := string(secrets.EnvFile(appSecrets(map[string]string{"HOIST_DNS_CLOUDFLARE_API_TOKEN": "t", "SECRET_KEY_BASE": "s", "AWS_ACCESS_KEY_ID": "app's own"})))
	if want := "AWS_ACCESS_KEY_ID=\"app's own\"\nSECRET_KEY_BASE=\"s\"\n"; got != want {
		t.Errorf("env file = %q, want %q", got, want)
	}
}

func TestDNSWantFromHostsAndAddresses(t *testing.T) {
	_, cfg := writeDNSApp(t, dnsApp)
	got, err := deploy.DNSWant(t.Context(), cfg, hoistHome())
	if err != nil {
		t.Fatal(err)
	}
	r := dns.Records{dns.TypeA: {"10.0.0.1", "10.0.0.2"}, dns.TypeAAAA: {"2001:db8::2"}}
	if diff := cmp.Diff(dns.Want{"www.hoist.test": r, "*.apps.hoist.test": r}, got); diff != "" {
		t.Errorf("want (-want +got):\n%s", diff)
	}
}

// TestDNSWantFromProvision points the names at what hoist provision
// recorded: its hosts' addresses, or its balancer (CNAME).
func TestDNSWantFromProvision(t *testing.T) {
	yml := strings.Replace(dnsApp, "hosts: [10.0.0.1, web2]\n", "", 1) + "infra:\n  provider: lab\n  count: 2\n"
	tests := map[string]struct {
		balancer *provision.Balancer
		want     dns.Records
	}{
		"hosts":    {nil, dns.Records{dns.TypeA: {"10.213.1.11", "10.213.1.12"}}},
		"balancer": {&provision.Balancer{Name: "lb", DNSName: "lb-1.eu-west-1.elb.amazonaws.com"}, dns.Records{dns.TypeCNAME: {"lb-1.eu-west-1.elb.amazonaws.com."}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, cfg := writeDNSApp(t, yml)
			st, err := provision.LoadState(hoistHome(), cfg.App, cfg.Infra.Env)
			if err != nil {
				t.Fatal(err)
			}
			st.Hosts = []provision.Host{{Name: "shop-production-0", PrivateAddr: "10.213.1.11"}, {Name: "shop-production-1", PrivateAddr: "10.213.1.12"}}
			st.Balancer = tt.balancer
			if err := st.Save(); err != nil {
				t.Fatal(err)
			}
			got, err := deploy.DNSWant(t.Context(), cfg, hoistHome())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(dns.Want{"www.hoist.test": tt.want, "*.apps.hoist.test": tt.want}, got); diff != "" {
				t.Errorf("want (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDNSVerbErrors(t *testing.T) {
	dir, _ := writeDNSApp(t, dnsApp)
	tests := map[string]struct {
		yml, inStderr string
		args          []string
		code          int
	}{
		"no dns section": {strings.Split(dnsApp, "proxy:")[0], "hint: name the app's DNS provider and zone under dns:", []string{"dns", "plan"}, 1},
		"records off":    {dnsApp + "  records: false\n", "dns.records is false: hoist keeps no records for shop", []string{"dns", "apply"}, 1},
		"no credentials": {dnsApp, "hint: export them, or keep them in hoist secrets under HOIST_DNS_, like `hoist secrets set HOIST_DNS_RFC2136_KEY`", []string{"dns", "status"}, 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(tt.yml), 0o644)
			wantFailure(t, dir, tt.args, tt.code, tt.inStderr)
		})
	}
}

// TestCertPlans: the first host obtains every name, with the DNS
// credentials for DNS-01; the others copy from it with the same secret
// and no credentials.
func TestCertPlans(t *testing.T) {
	yml := strings.Replace(dnsApp, `hosts: [www.hoist.test, "*.apps.hoist.test"]`, `hosts: [www.hoist.test, "*.apps.hoist.test"]
  tls: acme`, 1)
	dir, cfg := writeDNSApp(t, yml)
	t.Setenv("RFC2136_SERVER", "10.0.0.53:53")
	t.Setenv("RFC2136_KEY_NAME", "k")
	t.Setenv("RFC2136_KEY", "c2VjcmV0")
	a := &app{&deploy.App{Config: cfg, Repo: dir, Hosts: cfg.Hosts}}
	plans, err := deploy.CertPlans(t.Context(), a.App, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	issuer, copier := plans["10.0.0.1"], plans["web2"]
	if issuer == nil || copier == nil || issuer.PeerSecret == "" || issuer.PeerSecret != copier.PeerSecret {
		t.Fatalf("plans %+v, %+v", issuer, copier)
	}
	wantIssuer := []hostproto.CertPlanName{{Name: "www.hoist.test", Challenge: "http-01", Peers: true}, {Name: "*.apps.hoist.test", Challenge: "dns-01", Peers: true}}
	wantCopier := []hostproto.CertPlanName{{Name: "www.hoist.test", Challenge: "http-01", From: "10.0.0.1:9443"}, {Name: "*.apps.hoist.test", Challenge: "dns-01", From: "10.0.0.1:9443"}}
	if diff := cmp.Diff(wantIssuer, issuer.Names); diff != "" {
		t.Errorf("issuer's names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantCopier, copier.Names); diff != "" {
		t.Errorf("copier's names (-want +got):\n%s", diff)
	}
	// Each listens on its own address where the others dial it: the
	// copier for word of a renewal and for when it takes over.
	if !slices.Equal(issuer.Listen, []string{"10.0.0.1:9443"}) || !slices.Equal(copier.Listen, []string{"10.0.0.2:9443"}) {
		t.Errorf("peer channel addresses: issuer %v, copier %v; want each its own where the others dial", issuer.Listen, copier.Listen)
	}
	if issuer.DNS == nil || issuer.DNS.Credentials["key"] != "c2VjcmV0" || copier.DNS != nil {
		t.Errorf("DNS credentials: issuer %+v, copier %+v", issuer.DNS, copier.DNS)
	}
	// Every host knows the order in which they take over, and its place.
	if want := []string{"10.0.0.1:9443", "10.0.0.2:9443"}; !cmp.Equal(issuer.Peers, want) || !cmp.Equal(copier.Peers, want) ||
		issuer.Self != want[0] || copier.Self != want[1] {
		t.Errorf("peers: issuer %v (self %s), copier %v (self %s), want %v", issuer.Peers, issuer.Self, copier.Peers, copier.Self, want)
	}
	again, _ := deploy.CertPlans(t.Context(), a.App, io.Discard, false)
	if again["web2"].PeerSecret == copier.PeerSecret {
		t.Error("the peer secret did not change with the setup")
	}
	if p, _ := deploy.CertPlans(t.Context(), a.App, io.Discard, true); p != nil {
		t.Errorf("with --host on two hosts, plans %+v, want them left alone", p)
	}
	a.Hosts = cfg.Hosts[:1]
	one, _ := deploy.CertPlans(t.Context(), a.App, io.Discard, false)
	if p := one["10.0.0.1"]; p == nil || p.PeerSecret != "" || p.Names[0].Peers {
		t.Errorf("one host: %+v", p)
	}
	a.Config.Proxy.TLS = config.TLS{Mode: config.TLSInternal}
	none, _ := deploy.CertPlans(t.Context(), a.App, io.Discard, false)
	if p := none["10.0.0.1"]; p == nil || len(p.Names) != 0 {
		t.Errorf("tls: internal: %+v, want an empty plan (removes one left)", p)
	}
}
