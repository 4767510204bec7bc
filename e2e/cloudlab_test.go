//go:build lab && linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/labtest"
	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/twin"
)

// TestSeedTopologyBehindTheTwin is the seed's topology, end to end on
// the lab: two hosts provisioned from the bare image behind the balancer
// twin (balancer: alb), the firewall on, and an app that redirects what
// did not come over HTTPS, as Phoenix's force_ssl does behind a proxy.
// Through the twin over HTTPS it answers without a redirect and sees the
// client's own address; a rolling deploy one host at a time, under a
// client that never pauses, takes each host out, drains it, switches it
// and puts it back healthy before the next, and fails no request; from
// outside, the hosts' port 80, the app's port, epmd and the relay are
// closed; destroy leaves nothing.
func TestSeedTopologyBehindTheTwin(t *testing.T) {
	needRoot(t)
	const app, name = "seed", "seed.test"
	_, opPub := operatorKeyFiles(t)
	a := newApp(t, app, 3500, nil, fmt.Sprintf("proxy:\n  hosts: [%s]\ndeploy:\n  max_in_flight: 1\ninfra:\n  provider: lab\n  count: 2\n  balancer: alb\n  public_key: %s\n", name, opPub))
	a.edit(t, "hoist.yml", "  command: ./hello\n", "  command: ./hello\n  env: {FORCE_SSL: \"1\"}\n")
	labName := cleanAppLab(t, app)
	onFailureShowProxies(t, a.dir, app)

	provisioned, stderr := mustHoistBoth(t, a.dir, 10*time.Minute, "provision")
	if !strings.Contains(stderr, "lab "+labName) {
		t.Errorf("provision does not name the lab %s:\n%s", labName, stderr)
	}
	targets := strings.Fields(provisioned)
	st := readProvisionState(t, app)
	if len(targets) != 2 || st.Balancer == nil || st.Balancer.Addr == "" || st.Balancer.CA == "" {
		t.Fatalf("provision made %v, balancer %+v", targets, st.Balancer)
	}
	// Run again, provision changes nothing and sets no host up again:
	// the setup it compares with trusts the twin as the setup did.
	if _, stderr := mustHoistBoth(t, a.dir, 5*time.Minute, "provision"); !strings.Contains(stderr, "nothing changed") || strings.Contains(stderr, "setting up") {
		t.Errorf("second provision:\n%s", stderr)
	}
	var addrs []string
	for _, h := range st.Hosts {
		addrs = append(addrs, h.PrivateAddr)
	}
	lb := st.Balancer.Addr
	bridge := netip.MustParseAddr(lb).As4()
	bridge[3] = 1
	me := netip.AddrFrom4(bridge).String() // this machine, as the twin sees it

	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	c := twinClient(t, st.Balancer.CA, name, lb)
	// Over HTTPS: the app sees https and this machine as its client, so
	// it does not redirect.
	if code, body := c.get(t, "/client"); code != 200 || body != fmt.Sprintf("client %s proto https", me) {
		t.Errorf("GET /client through the twin: %d %q, want 200 client %s proto https", code, body, me)
	}
	// A client that names itself through the twin, which passes its
	// headers on as the ALB does, is still seen as itself: the hosts
	// trust the twin with what it sets, not with what it passes on.
	forged := http.Header{"X-Forwarded-For": {"203.0.113.66"}, "X-Real-Ip": {"203.0.113.66"}, "X-Forwarded-Proto": {"http"}}
	if code, body, _, err := c.tryWith("https", "/client", forged); err != nil || code != 200 || body != fmt.Sprintf("client %s proto https", me) {
		t.Errorf("GET /client through the twin with forged headers: %d %q %v, want 200 client %s proto https", code, body, err, me)
	}
	if code, body := c.get(t, "/"); code != 200 || body != "hello from release "+id {
		t.Errorf("GET / through the twin: %d %q", code, body)
	}
	// Over HTTP the twin redirects, as the ALB's listener on 80.
	if code, loc := c.plain(t, "/cart"); code != http.StatusMovedPermanently || loc != "https://"+name+"/cart" {
		t.Errorf("GET http://%s/cart: %d to %q", name, code, loc)
	}

	// What answers from outside, from a neighbour and from the twin is
	// what the network rules say, and the app's port, epmd and the relay
	// are closed from outside even with something listening there.
	cfg, err := config.Load(filepath.Join(a.dir, "hoist.yml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := provision.SpecFrom(cfg)
	ports := []int{22, 80, 443, 3500, 3501, 4369, 7373, 9180, 9443}
	for _, h := range st.Hosts {
		labtest.Listen(t, h.ID, 4369, 7373, 9443)
	}
	got, want := answering(t, st, ports, map[string]string{"operator": "", "balancer": "hoist-" + labName + "-lb"}, spec)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what answers on the hosts (-rules +lab):\n%s", diff)
	}
	for _, addr := range addrs {
		for _, p := range []int{80, 3500, 4369, 7373} {
			if ok, _ := labtest.Answers("", addr, p, 700*time.Millisecond); ok {
				t.Errorf("%s:%d answers from outside", addr, p)
			}
		}
	}

	// A rolling deploy, one host at a time, under a client that never
	// pauses: each host leaves the twin, drains, switches and comes back
	// healthy before the next leaves; no request fails.
	a.change(t)
	load := startLoad(t, c)
	watch := watchTargets(t, st.Balancer.ID)
	out, dstderr, err := deployJSON(t, a.dir)
	if err != nil {
		t.Fatalf("rolling deploy: %v\n%s", err, dstderr)
	}
	transitions := watch()
	served := load()
	if served.failed > 0 || served.ok < 50 {
		t.Errorf("under the deploy: %d requests served, %d failed (first: %s)", served.ok, served.failed, served.firstErr)
	}
	if !served.releases[id] || !served.releases[out.Release] {
		t.Errorf("releases seen under the deploy: %v, want %s then %s", served.releases, id, out.Release)
	}
	for _, h := range out.Hosts {
		if !h.OK || h.Status != deploy.StatusDeployed {
			t.Errorf("%s: %s", h.Host, h.Status)
		}
	}
	checkRolling(t, transitions, addrs)
	for range 4 {
		if code, body := c.get(t, "/"); code != 200 || body != "hello from release "+out.Release {
			t.Errorf("after the rolling deploy: %d %q", code, body)
		}
	}

	// destroy leaves nothing: no machine, namespace, link, twin process.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, stderr, err := hoistIn(ctx, a.dir, app+"\n", "destroy"); err != nil {
		t.Fatalf("destroy: %v\n%s", err, stderr)
	}
	assertLabGone(t, labName, append(addrs, lb))
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "/var/lib/hoist/lab/"+labName+"/") {
			t.Errorf("a process of the lab still runs: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

// twinHTTP is a client of the twin for name, trusting the lab's CA.
type twinHTTP struct {
	c          *http.Client
	name, addr string
}

func twinClient(t *testing.T, caFile, name, addr string) *twinHTTP {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(hostport)
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, net.JoinHostPort(addr, port))
		},
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &twinHTTP{name: name, addr: addr, c: &http.Client{Transport: tr, Timeout: 10 * time.Second,
		// A redirect is an answer to look at, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *twinHTTP) try(scheme, path string) (int, string, http.Header, error) {
	return c.tryWith(scheme, path, nil)
}

func (c *twinHTTP) tryWith(scheme, path string, h http.Header) (int, string, http.Header, error) {
	req, err := http.NewRequest("GET", scheme+"://"+c.name+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header, err
}

func (c *twinHTTP) get(t *testing.T, path string) (int, string) {
	t.Helper()
	code, body, _, err := c.try("https", path)
	if err != nil {
		t.Fatalf("GET https://%s%s through the twin: %v", c.name, path, err)
	}
	return code, body
}

func (c *twinHTTP) plain(t *testing.T, path string) (int, string) {
	t.Helper()
	code, _, h, err := c.try("http", path)
	if err != nil {
		t.Fatalf("GET http://%s%s through the twin: %v", c.name, path, err)
	}
	return code, h.Get("Location")
}

// answering lists what answers on each port of each host from the
// vantage points (name → network namespace, "" for this machine) and
// each host's neighbour, with what the network rules say should.
func answering(t *testing.T, st *provision.State, ports []int, vantages map[string]string, spec provision.Spec) (got, want map[string][]int) {
	t.Helper()
	want = map[string][]int{}
	var probes []labtest.Probe
	for i, h := range st.Hosts {
		vs := map[string]string{"neighbour": st.Hosts[1-i].ID}
		maps.Copy(vs, vantages)
		for v, ns := range vs {
			key := h.Name + " from " + v
			want[key] = provision.Rules(spec).HostPortsFor(vantagePeer[v])
			probes = append(probes, labtest.Probe{Key: key, NS: ns, Addr: h.PrivateAddr})
		}
	}
	return labtest.Survey(t, probes, ports, time.Second), want
}

// vantagePeer is who the rules call each vantage point.
var vantagePeer = map[string]provision.Peer{"operator": provision.PeerOperator, "neighbour": provision.PeerHosts, "balancer": provision.PeerBalancer}

// served is what a client without pause saw.
type served struct {
	ok, failed int
	firstErr   string
	releases   map[string]bool
}

// startLoad sends requests through the twin without pause, from two
// clients, until the returned function is called.
func startLoad(t *testing.T, c *twinHTTP) func() served {
	var stop atomic.Bool
	var mu sync.Mutex
	s := served{releases: map[string]bool{}}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, body, _, err := c.try("https", "/")
				mu.Lock()
				if err == nil && code == 200 && strings.HasPrefix(body, "hello from release ") {
					s.ok++
					s.releases[strings.TrimPrefix(body, "hello from release ")] = true
				} else {
					s.failed++
					if s.firstErr == "" {
						s.firstErr = fmt.Sprintf("%d %q %v at %s", code, body, err, time.Now().Format(time.StampMilli))
					}
				}
				mu.Unlock()
			}
		}()
	}
	return func() served {
		stop.Store(true)
		wg.Wait()
		return s
	}
}

// transition is a target's state as the twin reported it, from when.
type transition struct {
	target, state string
	at            time.Time
}

// watchTargets records the twin's target states until the returned
// function is called.
func watchTargets(t *testing.T, control string) func() []transition {
	c := &twin.Client{Socket: control}
	var out []transition
	last := map[string]string{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			hs, err := c.Health(ctx)
			cancel()
			now := time.Now()
			if err == nil {
				seen := map[string]bool{}
				for _, h := range hs {
					seen[h.Target] = true
					if last[h.Target] != h.State {
						last[h.Target] = h.State
						out = append(out, transition{h.Target, h.State, now})
					}
				}
				for tg, s := range last {
					if !seen[tg] && s != twin.StateUnused {
						last[tg] = twin.StateUnused
						out = append(out, transition{tg, twin.StateUnused, now})
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() []transition {
		close(stop)
		<-done
		return out
	}
}

// checkRolling checks that each host left the twin (draining, unused),
// came back (initial) and was healthy again before the next host left.
func checkRolling(t *testing.T, ts []transition, addrs []string) {
	t.Helper()
	var log []string
	for _, tr := range ts {
		log = append(log, fmt.Sprintf("%s %s %s", tr.at.Format("15:04:05.000"), tr.target, tr.state))
	}
	type span struct{ left, back time.Time }
	spans := map[string]*span{}
	var order []string
	for _, tr := range ts {
		host, _, _ := net.SplitHostPort(tr.target)
		sp := spans[host]
		switch tr.state {
		case twin.StateDraining, twin.StateUnused:
			if sp == nil {
				sp = &span{left: tr.at}
				spans[host] = sp
				order = append(order, host)
			}
		case twin.StateHealthy:
			if sp != nil && sp.back.IsZero() {
				sp.back = tr.at
			}
		}
	}
	if len(order) != len(addrs) {
		t.Fatalf("hosts that left the twin: %v, want each of %v once\n%s", order, addrs, strings.Join(log, "\n"))
	}
	for i, h := range order {
		sp := spans[h]
		if sp.back.IsZero() {
			t.Errorf("%s never came back healthy\n%s", h, strings.Join(log, "\n"))
		}
		if i > 0 && spans[order[i-1]].back.After(sp.left) {
			t.Errorf("%s left the twin before %s was back healthy\n%s", h, order[i-1], strings.Join(log, "\n"))
		}
	}
	// Each went through the whole of it: out (unused), in again, healthy.
	for _, h := range order {
		var states []string
		for _, tr := range ts {
			if th, _, _ := net.SplitHostPort(tr.target); th == h && (len(states) == 0 || states[len(states)-1] != tr.state) {
				states = append(states, tr.state)
			}
		}
		joined := strings.Join(states, " ")
		if !strings.Contains(joined, "unused initial") && !strings.Contains(joined, "unused healthy") {
			t.Errorf("%s went %s, want healthy, (draining,) unused, initial, healthy", h, joined)
		}
	}
}

// TestTwoACMEHostsThroughTheFirewall: two hosts provisioned on the lab
// with tls: acme from Pebble, behind the lab's firewall (balancer:
// none), both serve a valid certificate: the first obtains it by
// HTTP-01, the second copies it over the peer channel, which the
// firewall lets through between the hosts (the security group of AWS
// lacked port 9443, and so did the rules the lab now shares with it).
func TestTwoACMEHostsThroughTheFirewall(t *testing.T) {
	needRoot(t)
	const app, name = "twoacme", "twoacme.test"
	_, opPub := operatorKeyFiles(t)
	infra := fmt.Sprintf("infra:\n  provider: lab\n  count: 2\n  public_key: %s\n", opPub)
	a := newApp(t, app, 3600, nil, fmt.Sprintf("proxy:\n  hosts: [%s]\n%s", name, infra))
	labName := cleanAppLab(t, app)
	onFailureShowProxies(t, a.dir, app)
	// The hosts first, for the lab's bridge that Pebble listens on.
	targets := strings.Fields(mustHoistLong(t, a.dir, 10*time.Minute, "provision", "--no-setup"))
	st := readProvisionState(t, app)
	if len(targets) != 2 || len(st.Hosts) != 2 {
		t.Fatalf("provision made %v", targets)
	}
	h0, h1 := st.Hosts[0].PrivateAddr, st.Hosts[1].PrivateAddr
	b := netip.MustParseAddr(h0).As4()
	b[3] = 1
	bridge := netip.AddrFrom4(b).String()
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := privateCA(t, bridge)
	for f, pem := range map[string][]byte{"ca.pem": caPEM, "api.pem": certPEM, "api.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, f), pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Every name resolves to the first host, which the CA checks.
	ca := pebbletest.Start(t, pebbletest.Options{Listen: bridge, HTTPPort: 80, TLSPort: 443, Resolve: h0,
		APICert: filepath.Join(dir, "api.pem"), APIKey: filepath.Join(dir, "api.key"), APIRoots: filepath.Join(dir, "ca.pem")})
	a.write(t, "ca.pem", string(caPEM))
	a.writeConfig(t, nil, fmt.Sprintf("proxy:\n  hosts: [%s]\n  tls: acme\n  acme_ca: %s\n  acme_root: ca.pem\n  acme_email: ops@example.com\n%s", name, ca.Directory, infra))
	a.commit(t, "tls: acme")
	// The network rules follow hoist.yml: provision opens the peer
	// channel between the hosts (setup alone leaves the firewall as it
	// was) and sets the hosts up again for the new hoist.yml.
	_, stderr := mustHoistBoth(t, a.dir, 10*time.Minute, "provision")
	if !strings.Contains(stderr, "tcp 9443 from") {
		t.Errorf("provision with tls: acme does not change the firewall:\n%s", stderr)
	}
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	roots := ca.Roots(t)
	for _, h := range []string{h0, h1} {
		ans, leaf := getHTTPS(t, h, name, roots)
		if got := strings.TrimSpace(ans.body); got != "hello from release "+id {
			t.Errorf("%s over HTTPS: %q", h, got)
		}
		if !strings.Contains(leaf.Issuer.CommonName, "Pebble") || time.Now().After(leaf.NotAfter) {
			t.Errorf("%s serves a certificate from %q until %s", h, leaf.Issuer, leaf.NotAfter)
		}
	}
	// One order; the second host's is a copy over the peer channel.
	if n := ca.OrdersFor(t, name); n != 1 {
		t.Errorf("Pebble took %d orders for %s on two hosts, want 1", n, name)
	}
	out := mustHoist(t, a.dir, "proxy", "status", "--json")
	if !strings.Contains(out, fmt.Sprintf("copied from %s:9443", h0)) {
		t.Errorf("the second host's certificate is not a copy from %s:\n%s", h0, out)
	}
	// The peer channel is open between the hosts and closed from outside.
	if ok, _ := labtest.Answers(st.Hosts[1].ID, h0, 9443, time.Second); !ok {
		t.Errorf("%s:9443 does not answer the other host", h0)
	}
	if ok, _ := labtest.Answers("", h0, 9443, time.Second); ok {
		t.Errorf("%s:9443 answers from outside", h0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, stderr, err := hoistIn(ctx, a.dir, app+"\n", "destroy"); err != nil {
		t.Fatalf("destroy: %v\n%s", err, stderr)
	}
	assertLabGone(t, labName, []string{h0, h1})
}

// onFailureShowProxies logs, if the test failed, what hoist proxy
// status says and the proxies' last journal lines on the provisioned
// hosts of app, before the lab is taken down.
func onFailureShowProxies(t *testing.T, dir, app string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, errs, _ := hoist(ctx, dir, "proxy", "status")
		t.Logf("hoist proxy status:\n%s%s", out, errs)
		// Nothing here may stop the cleanup: what is missing is said.
		st, err := provision.LoadState(filepath.Join(work, "home"), app, "production")
		if err != nil {
			t.Logf("no provision state: %v", err)
			return
		}
		b, err := os.ReadFile(filepath.Join(work, "operator_ed25519"))
		if err != nil {
			t.Logf("no operator key: %v", err)
			return
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			t.Logf("operator key: %v", err)
			return
		}
		for _, h := range st.Hosts {
			t.Logf("%s's proxy:\n%s", h.Name, runAsAdmin(h.PrivateAddr, signer, h.HostKey, "sudo journalctl -u hoist-proxy --no-pager -o cat -n 80"))
		}
	})
}

// runAsAdmin runs cmd on a provisioned host, returning its output or
// what went wrong.
func runAsAdmin(addr string, signer ssh.Signer, hostKey, cmd string) string {
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return err.Error()
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 10 * time.Second,
	})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err.Error()
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return fmt.Sprintf("%s(%v)", out, err)
	}
	return string(out)
}
