package provision

import (
	"context"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/config"
)

// TestProvidersRegistered: config refuses a provider no one registered
// at its line and column, naming the registered ones; each provider's
// own checks run through the registry; New makes what spec names.
func TestProvidersRegistered(t *testing.T) {
	if got := strings.Join(Names(), " "); got != "aws lab" {
		t.Errorf("registered providers: %s", got)
	}
	const head = "version: 1\napp: shop\nbuild: {command: make, output: dist}\nrun: {command: ./shop}\n"
	_, err := config.Parse("hoist.yml", []byte(head+"infra:\n  provider: hetzner\n"))
	if err == nil || err.Error() != `hoist.yml:6:13: infra.provider: unknown provider "hetzner": expected aws or lab` {
		t.Errorf("unknown provider: %v", err)
	}
	_, err = config.Parse("hoist.yml", []byte(head+"infra:\n  provider: aws\n  region: moon\n"))
	if err == nil || !strings.Contains(err.Error(), `hoist.yml:7:11: infra.region: "moon" is not an AWS region`) {
		t.Errorf("aws's own check: %v", err)
	}
	p, err := New(context.Background(), Spec{Provider: config.ProviderLab, App: "shop", Env: "production", Count: 1}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*labProvider); !ok {
		t.Errorf("New made a %T for the lab", p)
	}
	if _, err := New(context.Background(), Spec{Provider: "hetzner"}, Env{}); err == nil {
		t.Error("New made a provider no one registered")
	}
}

// Every registered provider says what differs between providers
// (Registration's fields), so that nothing outside the registry needs a
// switch on its name.
func TestRegisteredProvidersAreWhole(t *testing.T) {
	for _, name := range Names() {
		r, _ := Lookup(name)
		if r.New == nil || r.Check == nil || r.Estimate == nil || r.BalancerNetworks == nil || r.Targets == nil {
			t.Errorf("provider %s leaves a field of its Registration unset: %+v", name, r)
		}
	}
	lab := Spec{Provider: config.ProviderLab, App: "shop", Env: "production", Count: 1, Balancer: config.BalancerALB}
	if got := Estimate(lab, nil); len(got.Lines) != 0 || Compare(lab, nil) != nil {
		t.Errorf("the lab's hosts cost %+v", got)
	}
	if got := BalancerNetworks(lab, &State{Balancer: &Balancer{Addr: "10.9.0.2"}}); strings.Join(got, " ") != "10.9.0.2/32" {
		t.Errorf("the lab twin's network: %v", got)
	}
	if got := BalancerNetworks(Spec{Provider: config.ProviderAWS, Balancer: config.BalancerALB}, nil); strings.Join(got, " ") != vpcCIDR {
		t.Errorf("the ALB's network: %v", got)
	}
	if got := BalancerNetworks(Spec{Provider: config.ProviderAWS}, nil); got != nil {
		t.Errorf("networks without a balancer: %v", got)
	}
	if !PublicSSH(config.ProviderAWS) || PublicSSH(config.ProviderLab) {
		t.Error("only AWS's hosts are reached over the internet")
	}
	if w := Where(lab); !strings.Contains(w, "hoist lab status --name "+LabName(lab)) {
		t.Errorf("where the lab's hosts are: %q", w)
	}
	unknown := Estimate(Spec{Provider: "hetzner"}, nil)
	if len(unknown.Unpriced) != 1 || unknown.Unpriced[0].Field != "infra.provider" {
		t.Errorf("a provider without prices: %+v", unknown)
	}
	if _, err := NewTargets(context.Background(), &State{Provider: "hetzner"}, ALBOptions{}); err == nil {
		t.Error("targets of a provider no one registered")
	}
}
