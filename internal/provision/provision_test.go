package provision

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/transport"
)

const testOperatorKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGa1ZYsq0tA8G3M5Hc2pSFRr0nCCq0RfwxhVDb0Pq9yc op@test"

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustPrices(t *testing.T) *Prices {
	t.Helper()
	p, err := LoadPrices("")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeHosts stands for the hosts' SSH side: a dial succeeds only when
// hoist's known_hosts names the key the host has (as sshd would present
// it), and the key-install script changes that key.
type fakeHosts struct {
	t     *testing.T
	known string
	mu    sync.Mutex
	keys  map[string]string // addr -> key the host presents
	seen  map[string]bool   // addrs whose key was replaced
	dials int
}

// boot says which key a new host at addr presents (from its user data).
func (f *fakeHosts) boot(addr, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]string{}
	}
	f.keys[addr] = key
}

func (f *fakeHosts) secured() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func (f *fakeHosts) dial(_ context.Context, target string) (transport.Conn, error) {
	addr := target[strings.IndexByte(target, '@')+1:]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	presented, ok := f.keys[addr]
	b, _ := os.ReadFile(f.known)
	if ok && !strings.Contains(string(b), addr+" "+presented+"\n") {
		return nil, &transport.HostKeyError{Err: fmt.Errorf("%s presented %s, which known_hosts does not hold:\n%s", addr, presented, b)}
	}
	// A host whose user data the fake did not see (kumo's): hoist must
	// still have recorded a key for it before connecting.
	if !ok && !strings.Contains(string(b), addr+" ssh-ed25519 ") {
		return nil, &transport.HostKeyError{Err: fmt.Errorf("hoist dialled %s with no key for it in known_hosts", addr)}
	}
	return &fakeConn{f: f, addr: addr}, nil
}

type fakeConn struct {
	f    *fakeHosts
	addr string
}

func (c *fakeConn) Addr() string { return c.addr }
func (c *fakeConn) User() string { return "admin" }
func (c *fakeConn) Close() error { return nil }

// Run accepts only the host-key install: its stdin is a private key
// whose public half the script writes.
func (c *fakeConn) Run(_ context.Context, cmd string, stdin io.Reader, _, _ io.Writer) error {
	if !strings.HasPrefix(cmd, "sudo -n sh -c ") || !strings.Contains(cmd, "ssh_host_ed25519_key") {
		return fmt.Errorf("unexpected command %q", cmd)
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return fmt.Errorf("the new host key sent is not a private key: %w", err)
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	if !strings.Contains(cmd, pub) {
		return fmt.Errorf("the script does not write the public half %s", pub)
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.f.keys == nil {
		c.f.keys = map[string]string{}
	}
	c.f.keys[c.addr] = pub
	if c.f.seen == nil {
		c.f.seen = map[string]bool{}
	}
	c.f.seen[c.addr] = true
	return nil
}

// memProvider keeps hosts in memory; a host boots with the key its
// user data gives it. failAfter > 0 makes Apply fail after that many
// creations, as an interrupted run would.
type memProvider struct {
	spec      Spec
	hosts     map[string]Resource
	fake      *fakeHosts
	failAfter int
}

func (m *memProvider) Desired() []Resource {
	var out []Resource
	for i := 0; i < m.spec.Count; i++ {
		out = append(out, Resource{Kind: "host", Name: m.spec.HostName(i), Props: "small"})
	}
	return out
}

func (m *memProvider) Observe(context.Context) (*Inventory, error) {
	inv := &Inventory{}
	for i := 0; i < 10; i++ {
		if r, ok := m.hosts[m.spec.HostName(i)]; ok {
			inv.Resources = append(inv.Resources, r)
			inv.Hosts = append(inv.Hosts, Host{Name: r.Name, ID: r.ID, PublicAddr: r.ID})
		}
	}
	return inv, nil
}

func (m *memProvider) Apply(ctx context.Context, changes []Change, env ApplyEnv) error {
	for n, c := range changes {
		if m.failAfter > 0 && n == m.failAfter {
			return errors.New("cut")
		}
		switch c.Action {
		case Create:
			ud, err := env.UserData(ctx, c.Resource.Name)
			if err != nil {
				return err
			}
			var doc struct {
				SSHKeys map[string]string `yaml:"ssh_keys"`
			}
			if err := yaml.Unmarshal(ud, &doc); err != nil {
				return err
			}
			addr := fmt.Sprintf("192.0.2.%d", 10+hostIndex(c.Resource.Name))
			m.fake.boot(addr, doc.SSHKeys["ed25519_public"])
			r := c.Resource
			r.ID = addr
			m.hosts[r.Name] = r
		case Delete:
			delete(m.hosts, c.Resource.Name)
		}
	}
	return nil
}

func (m *memProvider) Destroy(ctx context.Context, inv *Inventory, _ io.Writer) error {
	m.hosts = map[string]Resource{}
	return nil
}

func testEngine(t *testing.T, count int) (Options, *memProvider, *fakeHosts) {
	t.Helper()
	home := t.TempDir()
	spec := Spec{App: "shop", Env: "production", Provider: "lab", Count: count, User: "admin"}
	fake := &fakeHosts{t: t, known: home + "/known_hosts"}
	prov := &memProvider{spec: spec, hosts: map[string]Resource{}, fake: fake}
	st, err := LoadState(home, "shop", "production")
	if err != nil {
		t.Fatal(err)
	}
	return Options{Spec: spec, Provider: prov, State: st, KnownHosts: fake.known, AuthorizedKeys: []string{testOperatorKey},
		Dial: fake.dial, Prices: mustPrices(t), Log: testLog{t}}, prov, fake
}

func knownHostsLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestApplyVerifiesThenReplacesHostKeys: the first connection to a new
// host succeeds only because known_hosts already holds the key from its
// user data; afterwards known_hosts and the state hold only the
// replacement, and a host still presenting the first key is refused.
func TestApplyVerifiesThenReplacesHostKeys(t *testing.T) {
	o, prov, fake := testEngine(t, 2)
	ctx := context.Background()
	plan, err := MakePlan(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(ctx, o, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.New) != 2 || res.New[0] != "admin@192.0.2.10" {
		t.Errorf("new hosts %v", res.New)
	}
	var want []string
	for _, h := range o.State.Hosts {
		if !h.KeyReplaced || h.NextHostKey != "" {
			t.Errorf("%s: %+v", h.Name, h)
		}
		if fake.keys[h.Addr()] != h.HostKey {
			t.Errorf("%s presents %s, the state says %s", h.Name, fake.keys[h.Addr()], h.HostKey)
		}
		want = append(want, h.Addr()+" "+h.HostKey)
	}
	if diff := cmp.Diff(want, knownHostsLines(t, o.KnownHosts)); diff != "" {
		t.Errorf("known_hosts (-want +got):\n%s", diff)
	}
	// A host that presents the key from its user data now is refused.
	fake.boot("192.0.2.10", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIRSTKEYFROMUSERDATA")
	var hk *transport.HostKeyError
	if _, err := fake.dial(ctx, "admin@192.0.2.10"); !errors.As(err, &hk) {
		t.Errorf("a host with the old key was accepted: %v", err)
	}
	_ = prov
}

// TestApplyTwiceChangesNothing: the second run neither changes nor
// connects.
func TestApplyTwiceChangesNothing(t *testing.T) {
	o, _, fake := testEngine(t, 1)
	ctx := context.Background()
	p1, _ := MakePlan(ctx, o, false)
	if _, err := Apply(ctx, o, p1); err != nil {
		t.Fatal(err)
	}
	dials := fake.dials
	p2, err := MakePlan(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Changes) != 0 || !strings.HasPrefix(p2.Summary(), "nothing to change") {
		t.Errorf("second plan: %s", p2.Summary())
	}
	res, err := Apply(ctx, o, p2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || len(res.New) != 0 || fake.dials != dials {
		t.Errorf("second apply: %+v, %d more dials", res, fake.dials-dials)
	}
}

// TestInterruptedApplyResumes: a run cut after the first host leaves
// its key recorded; the next run makes the rest and secures both.
func TestInterruptedApplyResumes(t *testing.T) {
	o, prov, fake := testEngine(t, 2)
	ctx := context.Background()
	prov.failAfter = 1
	p1, _ := MakePlan(ctx, o, false)
	if _, err := Apply(ctx, o, p1); err == nil {
		t.Fatal("the cut run succeeded")
	}
	if len(o.State.Hosts) != 1 || o.State.Hosts[0].HostKey == "" || o.State.Hosts[0].KeyReplaced {
		t.Fatalf("after the cut the state holds %+v", o.State.Hosts)
	}
	// A new process reads the state from disk.
	st, err := LoadState(o.State.path[:strings.Index(o.State.path, "/provision/")], "shop", "production")
	if err != nil {
		t.Fatal(err)
	}
	o.State = st
	prov.failAfter = 0
	p2, _ := MakePlan(ctx, o, false)
	if p2.Counts()[Create] != 1 {
		t.Fatalf("resumed plan: %+v", p2.Changes)
	}
	if _, err := Apply(ctx, o, p2); err != nil {
		t.Fatal(err)
	}
	if fake.secured() != 2 {
		t.Errorf("%d hosts secured, want 2", fake.secured())
	}
}

func TestApplyRefusesReplaceUnlessAsked(t *testing.T) {
	o, prov, _ := testEngine(t, 1)
	ctx := context.Background()
	p1, _ := MakePlan(ctx, o, false)
	if _, err := Apply(ctx, o, p1); err != nil {
		t.Fatal(err)
	}
	r := prov.hosts["shop-production-0"]
	r.Props = "large"
	prov.hosts[r.Name] = r
	p2, _ := MakePlan(ctx, o, false)
	if p2.Counts()[Replace] != 1 {
		t.Fatalf("plan: %+v", p2.Changes)
	}
	if _, err := Apply(ctx, o, p2); err == nil || !strings.Contains(err.Error(), "would be replaced") {
		t.Errorf("replace without --replace: %v", err)
	}
}

func TestDiff(t *testing.T) {
	r := func(kind, name, props string, mutable bool) Resource {
		return Resource{Kind: kind, Name: name, Props: props, Mutable: mutable}
	}
	want := []Resource{r("vpc", "net", "a", false), r("sg", "hosts", "22 from x", true), r("instance", "h-0", "t3", false)}
	have := []Resource{{Kind: "vpc", Name: "net", ID: "vpc-1", Props: "a"}, {Kind: "sg", Name: "hosts", ID: "sg-1", Props: "22 from y"},
		{Kind: "instance", Name: "h-0", ID: "i-0", Props: "t2"}, {Kind: "instance", Name: "h-1", ID: "i-1", Props: "t3"}, {Kind: "lb", Name: "b", ID: "lb-1"}}
	var got []string
	for _, c := range Diff(want, have) {
		got = append(got, fmt.Sprintf("%s %s/%s %s", c.Action, c.Resource.Kind, c.Resource.Name, c.Resource.ID))
	}
	// Deletions come last, the last found first.
	wantS := []string{"update sg/hosts sg-1", "replace instance/h-0 i-0", "delete lb/b lb-1", "delete instance/h-1 i-1"}
	if diff := cmp.Diff(wantS, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}

// TestSeedTopologies prices the seed's two set-ups: one t2.micro with
// hoist's proxy, and the same behind an ALB, in us-east-1.
func TestSeedTopologies(t *testing.T) {
	p := mustPrices(t)
	base := Spec{Provider: "aws", Region: "us-east-1", Zones: []string{"us-east-1a"}, InstanceType: "t2.micro", Count: 1, DiskGB: 8, Balancer: "none"}
	tests := map[string]struct {
		balancer string
		zone     string
		lines    []float64
		total    float64
	}{
		"none":                {"none", "", []float64{8.47, 3.65, 0.64}, 12.76},
		"alb":                 {"alb", "", []float64{8.47, 3.65, 0.64, 16.43, 5.84, 7.30}, 42.33},
		"none, Route 53 zone": {"none", "example.com", []float64{8.47, 3.65, 0.64, 0.50}, 13.26},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := base
			s.Balancer, s.DNSZone = tt.balancer, tt.zone
			if tt.balancer == "alb" {
				s.Zones = []string{"us-east-1a", "us-east-1b"}
			}
			c := Estimate(s, p)
			var got []float64
			for _, l := range c.Lines {
				got = append(got, l.Monthly)
			}
			if diff := cmp.Diff(tt.lines, got); diff != "" || c.Total != tt.total {
				t.Errorf("lines (-want +got):\n%s\ntotal %.2f, want %.2f", diff, c.Total, tt.total)
			}
			if c.Source == "" || c.AsOf == "" {
				t.Error("the cost does not say where its prices come from")
			}
		})
	}
	cmpr := Compare(base, p)
	if len(cmpr) != 2 || cmpr[0].Total != 12.76 || cmpr[1].Total != 42.33 || !cmpr[0].Current {
		t.Errorf("comparison: %+v", cmpr)
	}
}

func TestPricesOverlayAndUnknowns(t *testing.T) {
	f := t.TempDir() + "/prices.json"
	os.WriteFile(f, []byte(`{"as_of": "2030-01", "regions": {"us-east-1": {"instances": {"t2.micro": 0.02}}, "xx-moon-1": {"instances": {"t3.micro": 1}, "gp3_gb_month": 1}}}`), 0o644)
	p, err := LoadPrices(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.Regions["us-east-1"].Instances["t2.micro"] != 0.02 || p.Regions["us-east-1"].Instances["t3.micro"] != 0.0104 || p.AsOf != "2030-01" {
		t.Errorf("overlay: %+v", p.Regions["us-east-1"])
	}
	if !strings.Contains(p.Source, f) {
		t.Errorf("source %q does not name the file", p.Source)
	}
	// What the table lacks is named and priced as unknown; the rest is priced.
	for name, tt := range map[string]struct {
		s       Spec
		field   string
		unknown []bool
		total   float64
	}{
		"unknown type":   {Spec{Provider: "aws", Region: "us-east-1", InstanceType: "z9.huge", Count: 1, DiskGB: 8}, "infra.instance_type", []bool{true, false, false}, 4.29},
		"unknown region": {Spec{Provider: "aws", Region: "ap-south-9", InstanceType: "t3.micro", Count: 1, DiskGB: 8}, "infra.region", []bool{true, true, true}, 0},
	} {
		c := Estimate(tt.s, p)
		var unknown []bool
		for _, l := range c.Lines {
			unknown = append(unknown, l.Unknown)
		}
		if len(c.Unpriced) != 1 || c.Unpriced[0].Field != tt.field || !strings.Contains(c.Unpriced[0].Msg, "no price") || !slices.Equal(unknown, tt.unknown) || c.Total != tt.total {
			t.Errorf("%s: unpriced %+v, unknown lines %v, total %.2f", name, c.Unpriced, unknown, c.Total)
		}
		if cmpr := Compare(tt.s, p); !cmpr[0].Unknown || !cmpr[1].Unknown {
			t.Errorf("%s: comparison %+v is not marked unknown", name, cmpr)
		}
	}
}

func TestStateTargets(t *testing.T) {
	st := &State{User: "admin", Hosts: []Host{{Name: "a", PublicAddr: "203.0.113.1", PrivateAddr: "10.0.0.1"}, {Name: "b", PrivateAddr: "2001:db8::1"}, {Name: "c"}}}
	if diff := cmp.Diff([]string{"admin@203.0.113.1", "admin@[2001:db8::1]"}, st.Targets()); diff != "" {
		t.Error(diff)
	}
}

func TestArchAndImageParameter(t *testing.T) {
	tests := map[string]struct{ image, typ, want string }{
		"debian on intel":  {"debian-12", "t3.micro", "/aws/service/debian/release/12/latest/amd64"},
		"debian on arm":    {"debian-12", "t4g.small", "/aws/service/debian/release/12/latest/arm64"},
		"ubuntu on arm":    {"ubuntu-24.04", "m7gd.large", "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"},
		"gpu is not arm":   {"debian-12", "g5.xlarge", "/aws/service/debian/release/12/latest/amd64"},
		"own parameter":    {"ssm:/my/param", "t3.micro", "/my/param"},
		"own ami, no look": {"ami-0123456789abcdef0", "t3.micro", ""},
	}
	for name, tt := range tests {
		if got := ImageParameter(tt.image, tt.typ); got != tt.want {
			t.Errorf("%s: %q, want %q", name, got, tt.want)
		}
	}
}
