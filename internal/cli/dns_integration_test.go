//go:build integration

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/bindtest"
	"github.com/hoistdev/hoist/internal/dns"
)

// TestDNSVerbsAgainstBind drives hoist dns plan, apply, status and
// destroy against bind9, with the key from the environment, and reads
// the zone back from bind9.
func TestDNSVerbsAgainstBind(t *testing.T) {
	s := bindtest.Start(t, bindtest.Options{Zone: "hoist.test", Records: []string{"legacy IN A 192.0.2.9"}})
	dir, _ := writeDNSApp(t, dnsApp)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	planOf := func(args ...string) dns.Plan {
		t.Helper()
		stdout, stderr, err := run(t, dir, append(args, "--json")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		var p dns.Plan
		if err := json.Unmarshal([]byte(stdout), &p); err != nil {
			t.Fatalf("%v printed %q: %v", args, stdout, err)
		}
		return p
	}
	actions := func(p dns.Plan) map[string]dns.Action {
		m := map[string]dns.Action{}
		for _, e := range p.Names {
			m[e.Name] = e.Action
		}
		return m
	}
	p := planOf("dns", "plan")
	if diff := cmp.Diff(map[string]dns.Action{"www.hoist.test": dns.Create, "*.apps.hoist.test": dns.Create}, actions(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if p.Provider != "rfc2136" || p.Zone != "hoist.test" || p.Owner != "shop" {
		t.Errorf("plan of %s zone %s owner %s", p.Provider, p.Zone, p.Owner)
	}

	stdout, stderr, err := run(t, dir, "dns", "apply")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "add A www.hoist.test 10.0.0.1 10.0.0.2\n") || stderr != "" {
		t.Errorf("apply printed %q, stderr %q", stdout, stderr)
	}
	for _, n := range []string{"www", "x.apps"} {
		if got := s.Query(t, n, mdns.TypeA); !cmp.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
			t.Errorf("%s A = %v", n, got)
		}
		if got := s.Query(t, n, mdns.TypeAAAA); !cmp.Equal(got, []string{"2001:db8::2"}) {
			t.Errorf("%s AAAA = %v", n, got)
		}
	}
	if diff := cmp.Diff(map[string]dns.Action{"www.hoist.test": dns.None, "*.apps.hoist.test": dns.None}, actions(planOf("dns", "status"))); diff != "" {
		t.Errorf("status after apply (-want +got):\n%s", diff)
	}
	if stdout, _, _ := run(t, dir, "dns", "apply"); stdout != "no changes: 2 name(s) in step\n" {
		t.Errorf("second apply printed %q", stdout)
	}

	// A name whose record hoist did not make is named, and left alone.
	os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(strings.Replace(dnsApp, "hosts: [www.hoist.test,", "hosts: [legacy.hoist.test, www.hoist.test,", 1)), 0o644)
	_, stderr, err = run(t, dir, "dns", "apply")
	if err == nil || !strings.Contains(stderr, "refuse legacy.hoist.test: A 192.0.2.9, not made by hoist") || !strings.Contains(stderr, "--take-over legacy.hoist.test") {
		t.Errorf("apply over legacy: %v\n%s", err, stderr)
	}
	if got := s.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("legacy A = %v", got)
	}

	// destroy asks first; with --yes it removes hoist's records only.
	if _, stderr, err := run(t, dir, "dns", "destroy"); ExitCode(err) != 2 || !strings.Contains(stderr, "pass --yes") {
		t.Errorf("destroy without --yes: %v\n%s", err, stderr)
	}
	stdout, stderr, err = run(t, dir, "dns", "destroy", "--yes", "--json")
	if err != nil {
		t.Fatalf("destroy: %v\n%s", err, stderr)
	}
	var res struct {
		Done []dns.Step `json:"done"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Done) != 6 {
		t.Errorf("destroy --json printed %s (%v)", stdout, err)
	}
	for _, n := range []string{"www", "x.apps", "_hoist.www", "_hoist-wildcard.apps"} {
		if got := append(s.Query(t, n, mdns.TypeA), s.Query(t, n, mdns.TypeTXT)...); len(got) != 0 {
			t.Errorf("after destroy %s = %v", n, got)
		}
	}
	if got := s.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("after destroy legacy A = %v", got)
	}
}
