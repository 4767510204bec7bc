package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/provision"
)

const seedConfig = `version: 1
app: horse
build: {command: mix release, output: dist}
run: {command: bin/horse start}
proxy: {hosts: [horse.example.com], tls: acme}
infra:
  provider: aws
  region: us-east-1
  instance_type: t2.micro
  ssh_from: [203.0.113.7/32]
`

func writeApp(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOIST_HOME", filepath.Join(dir, "home"))
	return dir
}

// offlinePlan is what `hoist plan --offline --json` plans for the app
// in dir, and what it says on stderr.
func offlinePlan(t *testing.T, dir string) (provision.Plan, string) {
	t.Helper()
	stdout, stderr, err := run(t, dir, "plan", "--offline", "--json")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr)
	}
	var p provision.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatal(err)
	}
	return p, stderr
}

// TestPlanOfflineSeedTopologies: the seed's single t2.micro with hoist's
// proxy, and behind an ALB, priced without credentials, as JSON and for
// people, each with the comparison the seed made by hand.
func TestPlanOfflineSeedTopologies(t *testing.T) {
	tests := map[string]struct {
		extra   string
		total   float64
		creates int
		compare string
	}{
		"proxy on the instance": {"", 12.76, 5, "balancer: alb      $42.33 a month ($29.57 more)"},
		"behind an alb":         {"  balancer: alb\n", 42.33, 13, "balancer: none     $12.76 a month ($29.57 less)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := seedConfig + tt.extra
			if tt.extra != "" {
				cfg = strings.Replace(cfg, "tls: acme", "tls: false", 1) // the ALB serves HTTPS
			}
			dir := writeApp(t, cfg)
			p, _ := offlinePlan(t, dir)
			if p.Cost.Total != tt.total || p.Counts()[provision.Create] != tt.creates || len(p.Compare) != 2 {
				t.Errorf("plan: total %.2f, %d to create, compare %+v; want %.2f and %d", p.Cost.Total, p.Counts()[provision.Create], p.Compare, tt.total, tt.creates)
			}
			text, _, err := run(t, dir, "plan", "--offline")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"public IPv4 address of each instance", "prices as of", tt.compare} {
				if !strings.Contains(text, want) {
					t.Errorf("plan does not say %q:\n%s", want, text)
				}
			}
		})
	}
}

func TestPlanWithoutInfraSection(t *testing.T) {
	dir := writeApp(t, "version: 1\napp: x\nbuild: {command: make, output: d}\nrun: {command: ./x}\n")
	_, stderr, err := run(t, dir, "plan")
	if err == nil || !strings.Contains(stderr, "no infra section") {
		t.Errorf("plan without infra: %v\n%s", err, stderr)
	}
}

// TestVerbsFindProvisionedHosts: with no hosts in hoist.yml, the verbs
// take them, and the login user, from what provision recorded.
func TestVerbsFindProvisionedHosts(t *testing.T) {
	dir := writeApp(t, seedConfig)
	g := &globalOptions{configPath: filepath.Join(dir, "hoist.yml")}
	s := &streams{in: strings.NewReader(""), out: os.Stdout, err: os.Stderr}
	if _, err := loadApp(g, s, nil); err == nil || !strings.Contains(err.Error(), "provisioned no hosts") {
		t.Fatalf("before provision: %v", err)
	}
	st, err := provision.LoadState(hoistHome(), "horse", "production")
	if err != nil {
		t.Fatal(err)
	}
	st.User = "admin"
	st.Hosts = []provision.Host{{Name: "horse-production-0", PublicAddr: "203.0.113.10"}, {Name: "horse-production-1", PublicAddr: "203.0.113.11"}}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	a, err := loadApp(g, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The login, admin, is not root: the host client adds sudo for it.
	if diff := cmp.Diff([]string{"admin@203.0.113.10", "admin@203.0.113.11"}, a.Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestDestroyConfirmation(t *testing.T) {
	tests := map[string]struct {
		typed string
		ok    bool
	}{
		"the name":       {"horse\n", true},
		"another name":   {"hors\n", false},
		"nothing at all": {"", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var errb strings.Builder
			err := confirm(&streams{in: strings.NewReader(tt.typed), err: &errb}, "horse", "destroy it")
			if (err == nil) != tt.ok {
				t.Errorf("confirm(%q) = %v", tt.typed, err)
			}
		})
	}
}

// TestSSHFromAgainstAnotherEndpoint: pointed at an AWS endpoint of its
// own (an emulator) without infra.ssh_from, hoist says what to set and
// dials nothing: not checkip.amazonaws.com, not the endpoint.
func TestSSHFromAgainstAnotherEndpoint(t *testing.T) {
	dir := writeApp(t, strings.Replace(seedConfig, "  ssh_from: [203.0.113.7/32]\n", "", 1))
	// A port nothing listens on: a dial would fail differently.
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
	_, stderr, err := run(t, dir, "plan")
	if err == nil || !strings.Contains(stderr, "infra.ssh_from is not set, and hoist talks to AWS at http://127.0.0.1:9") ||
		strings.Contains(stderr, "checkip") {
		t.Errorf("plan against another endpoint without ssh_from: %v\n%s", err, stderr)
	}
}

// TestPlanWithoutAPrice: an instance type or a region missing from the
// price table does not block the plan: the changes and the other lines
// are shown, that line's price is unknown, and the warning names the
// line of hoist.yml and --prices.
func TestPlanWithoutAPrice(t *testing.T) {
	tests := map[string]struct {
		from, to string
		where    string
		priced   int // lines with a price
	}{
		"instance type": {"instance_type: t2.micro", "instance_type: z9.huge", "hoist.yml:9:18: infra.instance_type: no price for z9.huge in us-east-1", 2},
		"region":        {"region: us-east-1", "region: ap-south-9", "hoist.yml:8:11: infra.region: no prices for ap-south-9", 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := writeApp(t, strings.Replace(seedConfig, tt.from, tt.to, 1))
			p, stderr := offlinePlan(t, dir)
			priced := 0
			for _, l := range p.Cost.Lines {
				if !l.Unknown {
					priced++
				}
			}
			if p.Counts()[provision.Create] != 5 || len(p.Cost.Lines) != 3 || priced != tt.priced || len(p.Cost.Unpriced) != 1 {
				t.Errorf("plan: %d to create, %d lines of which %d priced, unpriced %+v; want 5, 3, %d, 1", p.Counts()[provision.Create], len(p.Cost.Lines), priced, p.Cost.Unpriced, tt.priced)
			}
			if !strings.Contains(stderr, tt.where) || !strings.Contains(stderr, "--prices") {
				t.Errorf("stderr does not name the line and --prices:\n%s", stderr)
			}
			text, _, err := run(t, dir, "plan", "--offline")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"+ create", "gp3 disk", "unknown"} {
				if !strings.Contains(text, want) {
					t.Errorf("plan does not say %q:\n%s", want, text)
				}
			}
		})
	}
}
