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
