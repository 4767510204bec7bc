//go:build lab

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDestinationsKeepApart: staging and production from one hoist.yml,
// each on its own lab host with its own secrets and its own database;
// the secrets of one never reach the other's host, even when a command
// names that host.
func TestDestinationsKeepApart(t *testing.T) {
	hosts := needLab(t)
	production, staging := hosts[0], hosts[1]
	a := newNotesApp(t, "shop", 3710, nil, "accessories:\n  db:\n    service: postgresql\n    port: 5433\n")
	a.write(t, "hoist.production.yml", "hosts: ["+production+"]\n")
	a.write(t, "hoist.staging.yml", "hosts: ["+staging+"]\nrun:\n  env:\n    STAGE: staging\n")
	tokens := map[string]string{"production": "prod-token-" + strings.Repeat("p", 16), "staging": "staging-token-" + strings.Repeat("s", 16)}
	for dest, tok := range tokens {
		mustHoist(t, a.dir, "-d", dest, "secrets", "set", "TOKEN", tok)
	}
	a.commit(t, "destinations")

	deployed := map[string]string{}
	for _, dest := range []string{"production", "staging"} {
		mustHoist(t, a.dir, "-d", dest, "setup")
		var res struct {
			Release string `json:"release"`
			Hosts   []struct {
				Host string `json:"host"`
				OK   bool   `json:"ok"`
			} `json:"hosts"`
		}
		out := mustHoist(t, a.dir, "-d", dest, "deploy", "--json")
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Release == "" || len(res.Hosts) != 1 || !res.Hosts[0].OK {
			t.Fatalf("deploy --json of %s: %v\n%s", dest, err, out)
		}
		deployed[dest] = res.Hosts[0].Host
	}
	if deployed["production"] != production || deployed["staging"] != staging {
		t.Fatalf("deployed to %v, want production on %s and staging on %s", deployed, production, staging)
	}
	for dest, tok := range tokens {
		if got := mustHoist(t, a.dir, "-d", dest, "exec", "--", "printenv", "TOKEN"); got != tok+"\n" {
			t.Errorf("%s's app sees TOKEN %q, want %q", dest, got, tok)
		}
	}
	if got := mustHoist(t, a.dir, "-d", "staging", "exec", "--", "sh", "-c", `echo "$STAGE"`); got != "staging\n" {
		t.Errorf("staging's run.env: STAGE=%q", got)
	}
	envOf := func(h string) string { return onHost(t, h, "cat /var/lib/hoist/shop/shared/env") }
	if env := envOf(production); !strings.Contains(env, tokens["production"]) || strings.Contains(env, tokens["staging"]) {
		t.Errorf("production's host holds %q", env)
	}
	if env := envOf(staging); !strings.Contains(env, tokens["staging"]) || strings.Contains(env, tokens["production"]) {
		t.Errorf("staging's host holds %q", env)
	}

	// Each has its own database.
	a.addNote(t, staging, "only in staging")
	if got := a.notes(t, production); got != "" {
		t.Errorf("production's notes: %q, want none", got)
	}

	// Staging pointed at production's host is refused there, before
	// anything changes.
	stderr := failHoist(t, a.dir, "-d", "staging", "deploy", "--host", production)
	if !strings.Contains(stderr, "this host serves shop for destination production, not for destination staging") {
		t.Errorf("staging's deploy to production's host:\n%s", stderr)
	}
	if env := envOf(production); strings.Contains(env, tokens["staging"]) {
		t.Errorf("staging's secret reached production's host: %q", env)
	}
	stderr = failHoist(t, a.dir, "status")
	if !strings.Contains(stderr, "no hosts to work on") {
		t.Errorf("status without a destination (the base lists no hosts):\n%s", stderr)
	}
	stderr = failHoist(t, a.dir, "-d", "qa", "status")
	if !strings.Contains(stderr, "there is no destination qa") || !strings.Contains(stderr, "production, staging") {
		t.Errorf("a destination that does not exist:\n%s", stderr)
	}

	var audit []struct {
		Host        string `json:"host"`
		Destination string `json:"destination"`
		Op          string `json:"op"`
		Outcome     string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "-d", "production", "audit", "--json")), &audit); err != nil || len(audit) == 0 {
		t.Fatalf("audit --json: %v", err)
	}
	for _, e := range audit {
		if e.Destination != "production" || e.Host != production {
			t.Errorf("production's audit holds %+v", e)
		}
	}
}

// TestDestinationAdoptsHost: a host set up without -d joins a
// destination on `setup --adopt`, as the refusal (and status's) says;
// the release it served goes on serving meanwhile, and afterwards the
// host is the destination's.
func TestDestinationAdoptsHost(t *testing.T) {
	hosts := needLab(t)
	h := hosts[1]
	a := newApp(t, "adopt", 3430, []string{h}, "")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.write(t, "hoist.production.yml", "hosts: ["+h+"]\n")
	a.commit(t, "production")

	stderr := failHoist(t, a.dir, "-d", "production", "setup")
	if !strings.Contains(stderr, "serves adopt for no destination") || !strings.Contains(stderr, "hoist -d production setup --adopt") {
		t.Errorf("setup of a destination on a host of none:\n%s", stderr)
	}
	stderr = failHoist(t, a.dir, "-d", "production", "status")
	if !strings.Contains(stderr, "hoist -d production setup --adopt") {
		t.Errorf("status's hint:\n%s", stderr)
	}
	a.wantServed(t, []string{h}, r1)
	mustHoist(t, a.dir, "-d", "production", "setup", "--adopt")
	a.change(t)
	r2 := strings.TrimSpace(mustHoist(t, a.dir, "-d", "production", "deploy"))
	a.wantServed(t, []string{h}, r2)
	if got := onHost(t, h, "cat /var/lib/hoist/adopt/destination"); strings.TrimSpace(got) != "production" {
		t.Errorf("the host records destination %q", got)
	}
	if stderr := failHoist(t, a.dir, "deploy"); !strings.Contains(stderr, "serves adopt for destination production") {
		t.Errorf("hoist.yml alone after the adoption:\n%s", stderr)
	}
}
