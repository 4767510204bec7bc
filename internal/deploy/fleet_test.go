package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
)

// fakeHost is a host whose apps live in a directory: the host protocol
// runs in-process (host.Serve), except what needs systemd — activate,
// check and status — which it plays: activation points current at the
// release, or fails as the test says.
type fakeHost struct {
	name string
	base string
	fl   *fakeFleet
	// firewalled hosts cannot reach relays on other hosts.
	firewalled bool
	// noHoist: hoist is not installed (sudo cannot find it).
	noHoist bool
	// hangUnlocks is how many unlocks hang until their deadline.
	hangUnlocks int
	// cutAfter, when set, cuts the host's first fetch from a relay
	// after that many bytes came: as when the relay dies mid-transfer.
	cutAfter int64
}

// fakeFleet is the hosts of a test and what happened on them, in order.
type fakeFleet struct {
	mu     sync.Mutex
	hosts  map[string]*fakeHost
	events []string // "activate HOST ID OP", "deregister HOST"...
	// fail makes activating release id on host fail its health check;
	// failCheck makes the canary check of host fail.
	fail      map[string]string
	failCheck map[string]bool
	// calls counts the verbs hosts were called with.
	calls map[string]int
}

func newFakeFleet(t *testing.T, n int) (*fakeFleet, []string) {
	fl := &fakeFleet{hosts: map[string]*fakeHost{}, fail: map[string]string{}, failCheck: map[string]bool{}, calls: map[string]int{}}
	var names []string
	for i := range n {
		h := &fakeHost{name: fmt.Sprintf("web%02d", i+1), base: t.TempDir(), fl: fl}
		fl.hosts[h.name] = h
		names = append(names, h.name)
	}
	return fl, names
}

func (fl *fakeFleet) event(format string, args ...any) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.events = append(fl.events, fmt.Sprintf(format, args...))
}

func (fl *fakeFleet) dial(_ context.Context, h string) (transport.Conn, error) {
	if fh, ok := fl.hosts[h]; ok {
		return fh, nil
	}
	return nil, fmt.Errorf("%s: no route to host", h)
}

func (h *fakeHost) Addr() string { return h.name }
func (h *fakeHost) User() string { return "root" }
func (h *fakeHost) Close() error { return nil }

func (h *fakeHost) layout() host.Layout { return host.For(h.base, "demo") }

func (h *fakeHost) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if cmd == "echo $SSH_CONNECTION" {
		_, err := io.WriteString(stdout, "127.0.0.1 50000 127.0.0.1 22\n")
		return err
	}
	words := strings.Fields(cmd)
	if len(words) != 3 || words[0] != host.BinPath || words[1] != "host" {
		return fmt.Errorf("%s: unexpected command %q", h.name, cmd)
	}
	verb := words[2]
	h.fl.mu.Lock()
	h.fl.calls[verb]++
	hang := verb == "unlock" && h.hangUnlocks > 0
	if hang {
		h.hangUnlocks--
	}
	h.fl.mu.Unlock()
	if h.noHoist {
		fmt.Fprintf(stderr, "sudo: %s: command not found\n", host.BinPath)
		return &transport.ExitError{Host: h.name, Cmd: cmd, Code: 1}
	}
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	in := bufio.NewReader(stdin)
	switch verb {
	case "activate", "check", "status", "relay-fetch":
		line, err := in.ReadBytes('\n')
		if err != nil {
			return err
		}
		var req struct {
			App  string          `json:"app"`
			Args json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			return err
		}
		if verb == "relay-fetch" {
			return h.fetch(ctx, req.App, req.Args, stdout, stderr)
		}
		return h.play(verb, req.Args, stdout)
	}
	if code := host.Serve(ctx, h.base, []string{verb}, in, stdout, stderr); code != 0 {
		return &transport.ExitError{Host: h.name, Cmd: cmd, Code: code}
	}
	return nil
}

// fetch runs relay-fetch; a firewalled host is given a relay address
// that nothing answers at.
func (h *fakeHost) fetch(ctx context.Context, app string, args json.RawMessage, stdout, stderr io.Writer) error {
	var a map[string]any
	json.Unmarshal(args, &a)
	if h.firewalled {
		a["addr"] = "127.0.0.1:1"
	}
	h.fl.mu.Lock()
	cut := h.cutAfter
	h.cutAfter = 0
	h.fl.mu.Unlock()
	if addr, _ := a["addr"].(string); cut > 0 {
		a["addr"] = cutProxy(ctx, addr, cut)
	}
	b, _ := json.Marshal(map[string]any{"app": app, "args": a})
	if code := host.Serve(ctx, h.base, []string{"relay-fetch"}, bytes.NewReader(append(b, '\n')), stdout, stderr); code != 0 {
		return &transport.ExitError{Host: h.name, Cmd: "relay-fetch", Code: code}
	}
	return nil
}

// cutProxy forwards one connection to addr, and cuts it once limit
// bytes have come back from addr; it returns its own address.
func cutProxy(ctx context.Context, addr string, limit int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:1"
	}
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var d net.Dialer
		up, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		go io.Copy(up, c)
		io.CopyN(c, up, limit)
	}()
	return ln.Addr().String()
}

// play answers the verbs that need systemd.
func (h *fakeHost) play(verb string, args json.RawMessage, stdout io.Writer) error {
	l := h.layout()
	reply := func(v any, rerr *hostproto.RemoteError) error {
		r := hostproto.Response{OK: rerr == nil, Error: rerr}
		if v != nil {
			r.Result, _ = json.Marshal(v)
		}
		return json.NewEncoder(stdout).Encode(r)
	}
	switch verb {
	case "activate":
		var a struct {
			ID string `json:"id"`
			Op string `json:"op"`
		}
		json.Unmarshal(args, &a)
		h.fl.event("activate %s %s %s", h.name, a.ID, a.Op)
		if _, err := l.Manifest(a.ID); err != nil {
			return reply(nil, &hostproto.RemoteError{Message: "release " + a.ID + " is not on this host"})
		}
		h.fl.mu.Lock()
		bad := h.fl.fail[h.name] == a.ID
		h.fl.mu.Unlock()
		if bad {
			he := &hostproto.HealthError{ID: a.ID, Reason: "GET /up answered 500"}
			return reply(nil, &hostproto.RemoteError{Message: he.Error(), Health: he})
		}
		os.Remove(l.Current())
		if err := os.Symlink("releases/"+a.ID, l.Current()); err != nil {
			return err
		}
		return reply(nil, nil)
	case "check":
		h.fl.mu.Lock()
		bad := h.fl.failCheck[h.name]
		h.fl.mu.Unlock()
		h.fl.event("check %s", h.name)
		if bad {
			he := &hostproto.HealthError{ID: l.CurrentID(), Reason: "GET /up answered 503"}
			return reply(nil, &hostproto.RemoteError{Message: he.Error(), Health: he})
		}
		return reply(l.CurrentID(), nil)
	case "status":
		return reply(&hostproto.Status{App: "demo", Current: l.CurrentID(), State: "active"}, nil)
	}
	return fmt.Errorf("unplayed verb %s", verb)
}

// fakeBalancer records when hosts leave and come back.
type fakeBalancer struct{ fl *fakeFleet }

func (b fakeBalancer) Deregister(_ context.Context, h string) error {
	b.fl.event("deregister %s", h)
	return nil
}

func (b fakeBalancer) Register(_ context.Context, h string) error {
	b.fl.event("register %s", h)
	return nil
}

// appRepo is a repository whose build copies files/ into the release.
type appRepo struct {
	dir  string
	work string
	cfg  *config.Config
}

func newAppRepo(t *testing.T, deploy string) *appRepo {
	t.Helper()
	big := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	a := &appRepo{dir: gittest.Repo(t, map[string]string{"files/app": string(big[:2<<20]), "files/assets/big.bin": string(big[2<<20:]), "files/msg.txt": "one\n"}),
		work: t.TempDir()}
	c, err := config.Parse("hoist.yml", []byte("version: 1\napp: demo\nbuild:\n  command: mkdir -p out && cp -r files/. out/\n  output: out\nrun:\n  command: ./app\nhealth:\n  interval: 10ms\n  timeout: 1s\n"+deploy))
	if err != nil {
		t.Fatal(err)
	}
	a.cfg = c
	return a
}

// change edits msg.txt and a few bytes in the middle of app, commits,
// and builds.
func (a *appRepo) change(t *testing.T, n int) *build.Artifact {
	t.Helper()
	os.WriteFile(filepath.Join(a.dir, "files/msg.txt"), []byte(fmt.Sprintf("change %d\n", n)), 0o644)
	f, err := os.OpenFile(filepath.Join(a.dir, "files/app"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(fmt.Sprintf("edit %d", n)), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	gittest.Commit(t, a.dir, "change")
	return a.build(t, time.Date(2026, 11, 25, 2, 0, n, 0, time.UTC))
}

func (a *appRepo) build(t *testing.T, at time.Time) *build.Artifact {
	t.Helper()
	art, err := build.Release(context.Background(), build.Options{Config: a.cfg, Repo: a.dir, WorkDir: a.work, Log: io.Discard, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return art
}

func (a *appRepo) ship(t *testing.T, fl *fakeFleet, hosts []string, art *build.Artifact, o func(*ShipOptions)) (*Outcome, string) {
	t.Helper()
	var log bytes.Buffer
	so := ShipOptions{Config: a.cfg, Hosts: hosts, Dial: fl.dial, Log: &log, LogMu: &sync.Mutex{}, WorkDir: a.work}
	if o != nil {
		o(&so)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Ship(ctx, so, art), log.String()
}

// statuses is each host's status, in the order of hosts.
func statuses(out *Outcome) []string {
	var s []string
	for _, r := range out.Hosts {
		s = append(s, r.Host+" "+r.Status)
	}
	return s
}

func want(hosts []string, status func(i int) string) []string {
	var s []string
	for i, h := range hosts {
		s = append(s, h+" "+status(i))
	}
	return s
}

// TestShipRelaysAndSendsDeltas deploys to twelve hosts: the release
// leaves this machine once, the others fetch it from hosts that hold it,
// and every host has every file checked; then a change travels as a
// delta of a few KiB.
func TestShipRelaysAndSendsDeltas(t *testing.T) {
	fl, hosts := newFakeFleet(t, 12)
	a := newAppRepo(t, "")
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	out, log := a.ship(t, fl, hosts, r1, nil)
	if diff := cmp.Diff(want(hosts, func(int) string { return StatusDeployed }), statuses(out)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	fromHere, relayed := 0, 0
	var sent int64
	for _, r := range out.Hosts {
		sent += r.Transfer.Sent
		switch {
		case r.Transfer.From == "this machine":
			fromHere++
		case strings.HasPrefix(r.Transfer.From, "relay "):
			relayed++
		}
		x, _ := r1.Index()
		if err := release.Verify(x, fl.hosts[r.Host].layout().Release(r1.Manifest.ID)); err != nil {
			t.Errorf("%s: %v", r.Host, err)
		}
	}
	if fromHere != 1 || relayed != 11 {
		t.Errorf("%d hosts were sent the release from here and %d from a relay; want 1 and 11\n%s", fromHere, relayed, log)
	}
	// The objects once, and each host's index (a few KiB).
	if sent > r1.Manifest.Size+12*8<<10 {
		t.Errorf("sent %d bytes for a %d-byte release to 12 hosts", sent, r1.Manifest.Size)
	}

	r2 := a.change(t, 1)
	fl.calls = map[string]int{}
	out, log = a.ship(t, fl, hosts, r2, func(o *ShipOptions) { o.Config.Deploy.Relay = new(bool) })
	// The index goes from the release hosts hold, in one round trip.
	if fl.calls["ship-index"] != len(hosts) {
		t.Errorf("%d ship-index calls for %d hosts", fl.calls["ship-index"], len(hosts))
	}
	if diff := cmp.Diff(want(hosts, func(int) string { return StatusDeployed }), statuses(out)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	for _, r := range out.Hosts {
		tr := r.Transfer
		if tr.From != "this machine" || tr.Deltas != 1 || tr.Sent > 16<<10 || tr.Linked != 1 || tr.Files != 3 {
			t.Errorf("%s: %+v; want app as a delta, big.bin linked, under 16 KiB sent", r.Host, tr)
		}
	}
	if !strings.Contains(log, "sent ") || !strings.Contains(log, "% of") && !strings.Contains(log, "release (") {
		t.Errorf("the log does not say what was sent against the release's size:\n%s", log)
	}
}

// TestShipRelayDiesSurvivorsServe: the relay dies while the first
// wave fetches from it (each got part of the release): one of them,
// the one that holds the most, is sent the rest from here and serves
// the others; they do not all fall back to this machine's uplink.
func TestShipRelayDiesSurvivorsServe(t *testing.T) {
	fl, hosts := newFakeFleet(t, 6)
	for i, h := range hosts[1:5] {
		fl.hosts[h].cutAfter = int64(256+64*i) << 10
	}
	a := newAppRepo(t, "")
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	out, log := a.ship(t, fl, hosts, r1, nil)
	if diff := cmp.Diff(want(hosts, func(int) string { return StatusDeployed }), statuses(out)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	from := map[string]int{}
	var sent int64
	for _, r := range out.Hosts {
		from[r.Transfer.From]++
		sent += r.Transfer.Sent
		x, _ := r1.Index()
		if err := release.Verify(x, fl.hosts[r.Host].layout().Release(r1.Manifest.ID)); err != nil {
			t.Errorf("%s: %v", r.Host, err)
		}
	}
	// The seed, and one survivor sent what it lacked.
	if from["this machine"] != 2 {
		t.Errorf("the release came from %v; want this machine twice (the seed, then one survivor)\n%s", from, log)
	}
	if !strings.Contains(log, "serves the others") {
		t.Errorf("the log does not say which survivor serves:\n%s", log)
	}
	// Far less than once per host through this machine's uplink.
	if sent > 2*r1.Manifest.Size {
		t.Errorf("sent %d bytes from here for a %d-byte release", sent, r1.Manifest.Size)
	}
}

// TestShipFallsBackWithoutAPathBetweenHosts: hosts that cannot reach a
// relay are sent the release from here.
func TestShipFallsBackWithoutAPathBetweenHosts(t *testing.T) {
	fl, hosts := newFakeFleet(t, 4)
	for _, h := range hosts[1:] {
		fl.hosts[h].firewalled = true
	}
	a := newAppRepo(t, "")
	out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), nil)
	for _, r := range out.Hosts {
		if r.Status != StatusDeployed || r.Transfer.From != "this machine" {
			t.Errorf("%s: %s from %+v", r.Host, r.Status, r.Transfer)
		}
	}
	if !strings.Contains(log, "no path to relay") {
		t.Errorf("the fallback is not said:\n%s", log)
	}
}

// TestRolloutUndoesEverySwitch: canary, then two at a time; the host of
// the third group fails its health check, so the deploy stops there and
// every host that switched goes back to the previous release.
func TestRolloutUndoesEverySwitch(t *testing.T) {
	fl, hosts := newFakeFleet(t, 6)
	a := newAppRepo(t, "deploy:\n  max_in_flight: 2\n  canary: {hosts: 1, watch: 30ms}\n")
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	out, log := a.ship(t, fl, hosts, r1, nil)
	if out.Stopped != "" {
		t.Fatalf("first deploy stopped: %s\n%s", out.Stopped, log)
	}
	for _, r := range out.Hosts {
		if !r.OK {
			t.Errorf("first deploy: %s is not ok: %+v", r.Host, r)
		}
	}
	r2 := a.change(t, 1)
	fl.fail["web04"] = r2.Manifest.ID
	fl.events = nil
	out, log = a.ship(t, fl, hosts, r2, nil)
	wantStatus := map[string]string{"web01": StatusRolledBack, "web02": StatusRolledBack, "web03": StatusRolledBack,
		"web04": StatusFailed, "web05": StatusFailed, "web06": StatusNotSwitched}
	// web04 and web05 switch together; web05's switch went through.
	wantStatus["web05"] = StatusRolledBack
	if diff := cmp.Diff(want(hosts, func(i int) string { return wantStatus[hosts[i]] }), statuses(out)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	for _, h := range hosts {
		if cur := fl.hosts[h].layout().CurrentID(); cur != r1.Manifest.ID {
			t.Errorf("%s serves %s, want %s", h, cur, r1.Manifest.ID)
		}
	}
	if !strings.Contains(out.Stopped, "web04") {
		t.Errorf("stopped: %q", out.Stopped)
	}
	if got := out.Summary(); got != "1 failed, 4 rolled back, 1 not switched" {
		t.Errorf("summary %q", got)
	}
	// Groups in turn: the canary, watched, then two by two.
	groups := []string{}
	for _, r := range out.Hosts {
		groups = append(groups, fmt.Sprint(r.Group))
	}
	if diff := cmp.Diff([]string{"1", "2", "2", "3", "3", "4"}, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	first := map[string]int{}
	for i, e := range fl.events {
		if f := strings.Fields(e); f[0] == "activate" && f[2] == r2.Manifest.ID {
			first[f[1]] = i
		}
	}
	if !(first["web01"] < first["web02"] && first["web02"] < first["web04"] && first["web03"] < first["web05"]) {
		t.Errorf("activations out of turn: %v", fl.events)
	}
	if _, ok := first["web06"]; ok {
		t.Errorf("web06 was switched after the deploy stopped: %v", fl.events)
	}
	// Each host's audit trail says what an activation was for.
	var undone []string
	for _, e := range fl.events {
		if f := strings.Fields(e); f[0] == "activate" && f[2] == r1.Manifest.ID {
			if op := strings.Join(f[3:], " "); op != "undo deploy" {
				t.Errorf("going back on %s is %q in the audit trail", f[1], op)
			}
			undone = append(undone, f[1])
		} else if f[0] == "activate" && strings.Join(f[3:], " ") != "deploy" {
			t.Errorf("%q: not a deploy in the audit trail", e)
		}
	}
	slices.Sort(undone)
	if diff := cmp.Diff([]string{"web01", "web02", "web03", "web05"}, undone); diff != "" {
		t.Errorf("hosts taken back (-want +got):\n%s", diff)
	}
	for _, r := range out.Hosts {
		if r.OK {
			t.Errorf("%s is ok in a deploy that stopped: %+v", r.Host, r)
		}
	}
	if !strings.Contains(strings.Join(fl.events, "\n"), "check web01") {
		t.Errorf("the canary was not watched: %v", fl.events)
	}
	rs := out.Results()
	if rs[5].Err == nil || rs[0].Err == nil {
		t.Errorf("results do not fail the hosts that do not serve the release: %v", rs)
	}
}

// TestCanaryFailsItsWatch: the canary passes its switch, then fails a
// check while watched: it goes back, and no other host switches.
func TestCanaryFailsItsWatch(t *testing.T) {
	fl, hosts := newFakeFleet(t, 3)
	a := newAppRepo(t, "deploy:\n  canary: {hosts: 1, watch: 1s}\n")
	r1 := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	a.ship(t, fl, hosts, r1, nil)
	fl.failCheck["web01"] = true
	out, log := a.ship(t, fl, hosts, a.change(t, 1), nil)
	if diff := cmp.Diff([]string{"web01 rolled back", "web02 not switched", "web03 not switched"}, statuses(out)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	if !strings.Contains(out.Stopped, "canary web01") {
		t.Errorf("stopped: %q", out.Stopped)
	}
	for _, h := range hosts {
		if cur := fl.hosts[h].layout().CurrentID(); cur != r1.Manifest.ID {
			t.Errorf("%s serves %s", h, cur)
		}
	}
}

// TestBalancedRolloutOneHostOut: behind a balancer each host leaves it,
// switches, and comes back before the next leaves.
func TestBalancedRolloutOneHostOut(t *testing.T) {
	fl, hosts := newFakeFleet(t, 3)
	a := newAppRepo(t, "")
	out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), func(o *ShipOptions) { o.Balancer = fakeBalancer{fl} })
	if out.Stopped != "" {
		t.Fatalf("%s\n%s", out.Stopped, log)
	}
	var got []string
	for _, e := range fl.events {
		got = append(got, strings.Join(strings.Fields(e)[:2], " "))
	}
	want := []string{}
	for _, h := range hosts {
		want = append(want, "deregister "+h, "activate "+h, "register "+h)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("balancer and activations (-want +got):\n%s", diff)
	}
}

// An unreachable host is reported as such; the others are deployed.
func TestShipReportsUnreachableHost(t *testing.T) {
	fl, hosts := newFakeFleet(t, 3)
	a := newAppRepo(t, "")
	hosts = append(hosts, "web99")
	out, log := a.ship(t, fl, hosts, a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), nil)
	if diff := cmp.Diff([]string{"web01 deployed", "web02 deployed", "web03 deployed", "web99 unreachable"}, statuses(out)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	if fleet.Failed(out.Results())[0].Host != "web99" {
		t.Errorf("results: %v", out.Results())
	}
}

func TestGroups(t *testing.T) {
	tests := map[string]struct {
		yaml     string
		n        int
		balanced bool
		want     [][]int
	}{
		"all at once":         {"", 4, false, [][]int{{0, 1, 2, 3}}},
		"two at a time":       {"max_in_flight: 2\n", 5, false, [][]int{{0, 1}, {2, 3}, {4}}},
		"canary then a third": {"max_in_flight: 34%\n  canary: {hosts: 1}\n", 7, false, [][]int{{0}, {1, 2}, {3, 4}, {5, 6}}},
		"balanced default":    {"", 3, true, [][]int{{0}, {1}, {2}}},
		"balanced never all":  {"max_in_flight: 100%\n", 3, true, [][]int{{0, 1}, {2}}},
		"canary of all":       {"canary: {hosts: 5}\n", 2, false, [][]int{{0, 1}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := config.Parse("hoist.yml", []byte("version: 1\napp: x\nbuild: {command: make, output: d}\nrun: {command: ./x}\ndeploy:\n  "+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, groups(tt.n, c.Deploy, tt.balanced)); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStageSwitchesNothing: --stage puts the release on the hosts, and
// a later deploy of it only switches them.
func TestStageSwitchesNothing(t *testing.T) {
	fl, hosts := newFakeFleet(t, 2)
	a := newAppRepo(t, "")
	art := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	out, log := a.ship(t, fl, hosts, art, func(o *ShipOptions) { o.Stage = true })
	if diff := cmp.Diff([]string{"web01 staged", "web02 staged"}, statuses(out)); diff != "" || len(fleet.Failed(out.Results())) != 0 {
		t.Fatalf("statuses (-want +got):\n%s\n%s", diff, log)
	}
	if len(fl.events) != 0 {
		t.Errorf("staging switched: %v", fl.events)
	}
	out, log = a.ship(t, fl, hosts, art, nil)
	for _, r := range out.Hosts {
		if r.Status != StatusDeployed || r.Transfer.From != "already there" {
			t.Errorf("%s: %s, %+v\n%s", r.Host, r.Status, r.Transfer, log)
		}
	}
}

// TestRollbackSaysWhatEachHostServes: Rollback returns, per host, the
// release it serves afterwards (what its status then reads), so the CLI
// need not ask every host again; "" where the rollback failed.
func TestRollbackSaysWhatEachHostServes(t *testing.T) {
	fl, hosts := newFakeFleet(t, 2)
	a := newAppRepo(t, "")
	first := a.build(t, time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC))
	for _, art := range []*build.Artifact{first, a.change(t, 1)} {
		if out, log := a.ship(t, fl, hosts, art, nil); len(fleet.Failed(out.Results())) != 0 {
			t.Fatalf("deploy of %s: %v\n%s", art.Manifest.ID, out.Results(), log)
		}
	}
	fl.fail["web02"] = first.Manifest.ID
	var log bytes.Buffer
	so := ShipOptions{Config: a.cfg, Hosts: append(hosts, "web99"), Dial: fl.dial, Log: &log, LogMu: &sync.Mutex{}, WorkDir: a.work}
	ids, results := Rollback(context.Background(), so, "")
	if len(ids) != len(results) {
		t.Fatalf("%d ids for %d results", len(ids), len(results))
	}
	for i, r := range results {
		want := ""
		if r.Host == "web01" {
			want = first.Manifest.ID
		}
		if ids[i] != want || (r.Err == nil) != (want != "") {
			t.Errorf("%s: serves %q (err %v), want %q\n%s", r.Host, ids[i], r.Err, want, log.String())
		}
		if fh := fl.hosts[r.Host]; fh != nil && r.Err == nil && fh.layout().CurrentID() != ids[i] {
			t.Errorf("%s: Rollback says %s, the host serves %s", r.Host, ids[i], fh.layout().CurrentID())
		}
	}
}
