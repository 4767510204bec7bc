package host

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/hostproto"
)

func TestWriteCertPlan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	plan := &hostproto.CertPlan{Names: []hostproto.CertPlanName{{Name: "*.shop.test", Challenge: hostproto.ChallengeDNS01}},
		DNS: &hostproto.DNSPlan{Provider: "rfc2136", Zone: "shop.test", Credentials: dns.Credentials{"server": "10.0.0.53:53", "key": "c2VjcmV0"}}}
	if err := writeCertPlan(dir, &hostproto.Spec{App: "shop", Certs: plan}); err != nil {
		t.Fatal(err)
	}
	path := certs.PlanPath(dir, "shop")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("plan mode %v, want 0600: it holds credentials", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("plan directory mode %v, want 0700", di.Mode().Perm())
	}
	var got hostproto.CertPlan
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &got); err != nil || got.App != "shop" || got.DNS.Credentials["key"] != "c2VjcmV0" {
		t.Errorf("plan on disk: %s (%v)", b, err)
	}

	// A deploy's spec carries no plan: the file stays.
	if err := writeCertPlan(dir, &hostproto.Spec{App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a spec without a plan removed it: %v", err)
	}
	// A bad plan is refused, the old one kept.
	bad := &hostproto.CertPlan{Names: []hostproto.CertPlanName{{Name: "a.shop.test", Challenge: hostproto.ChallengeDNS01}}}
	if err := writeCertPlan(dir, &hostproto.Spec{App: "shop", Certs: bad}); err == nil {
		t.Error("a DNS-01 plan without a provider was written")
	}
	// A plan without names removes it.
	if err := writeCertPlan(dir, &hostproto.Spec{App: "shop", Certs: &hostproto.CertPlan{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty plan left the file: %v", err)
	}
}
