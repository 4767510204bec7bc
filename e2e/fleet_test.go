//go:build lab

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/waittest"
)

// The fleet: twelve hosts in a lab of their own. (bench/ship.sh puts a
// slow uplink in front of such a fleet; here it would only slow down
// setup, which sends each host hoist itself.)
const (
	fleetLab   = "e2efleet"
	fleetHosts = 12
)

var (
	fleetOnce sync.Once
	fleetAddr []string
	fleetErr  error
)

func fleetOptions() lab.Options {
	home := filepath.Join(work, "home")
	return lab.Options{Name: fleetLab, KeyPath: filepath.Join(home, "lab", "id_ed25519"), KnownHostsPath: filepath.Join(home, "known_hosts")}
}

// needFleet boots the fleet once for the run; TestMain's cleanup takes
// it down with the other lab.
func needFleet(t *testing.T) []string {
	t.Helper()
	needLab(t) // the same preconditions, and the lab key
	fleetOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		hoist(ctx, "", "lab", "down", "--name", fleetLab)
		stdout, stderr, err := hoist(ctx, "", "lab", "up", "--name", fleetLab, "--hosts", fmt.Sprint(fleetHosts))
		if err != nil {
			fleetErr = fmt.Errorf("hoist lab up: %v\n%s", err, stderr)
			return
		}
		fleetAddr = strings.Fields(stdout)
		if len(fleetAddr) != fleetHosts {
			fleetErr = fmt.Errorf("hoist lab up printed %q, want %d addresses", stdout, fleetHosts)
		}
		labsUp = append(labsUp, fleetLab)
	})
	if fleetErr != nil {
		t.Fatalf("fleet lab: %v", fleetErr)
	}
	return fleetAddr
}

// deployJSON runs hoist deploy --json and returns its outcome, and
// whether it failed.
func deployJSON(t *testing.T, dir string, args ...string) (*deploy.Outcome, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stdout, stderr, err := hoist(ctx, dir, append([]string{"deploy", "--json"}, args...)...)
	var out deploy.Outcome
	if jerr := json.Unmarshal([]byte(stdout), &out); jerr != nil {
		t.Fatalf("deploy --json printed no outcome (%v): %v\nstdout:\n%s\nstderr:\n%s", jerr, err, stdout, stderr)
	}
	return &out, stderr, err
}

// byStatus counts the hosts of an outcome by status.
func byStatus(out *deploy.Outcome) map[string]int {
	m := map[string]int{}
	for _, h := range out.Hosts {
		m[h.Status]++
	}
	return m
}

// verifyOnHosts checks, on every host, every file of release id against
// the index this machine packed it with.
func verifyOnHosts(t *testing.T, app, id string, hosts []string) {
	t.Helper()
	x := localIndex(t, app, id)
	var want []string
	for _, e := range x.Entries {
		if e.Type == release.TypeFile {
			want = append(want, e.Sum+"  ./"+e.Path)
		}
	}
	sort.Strings(want)
	for _, h := range hosts {
		conn := dialLab(t, h)
		var out bytes.Buffer
		cmd := fmt.Sprintf("cd /var/lib/hoist/%s/releases/%s && find . -type f ! -name '.hoist-*' -exec sha256sum {} + | sort", app, id)
		if err := conn.Run(context.Background(), cmd, nil, &out, io.Discard); err != nil {
			t.Errorf("%s: %v", h, err)
			continue
		}
		got := strings.Split(strings.TrimSpace(out.String()), "\n")
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: release %s's files differ from its index:\n%s\nwant:\n%s", h, id, out.String(), strings.Join(want, "\n"))
		}
	}
}

// currents is what each host serves according to its current symlink.
func currents(t *testing.T, app string, hosts []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, h := range hosts {
		var out bytes.Buffer
		dialLab(t, h).Run(context.Background(), "basename $(readlink /var/lib/hoist/"+app+"/current)", nil, &out, io.Discard)
		m[h] = strings.TrimSpace(out.String())
	}
	return m
}

// TestFleetRollout walks a fleet of twelve hosts behind the proxy
// through: a first deploy relayed host to host, a rolling deploy with a
// canary and three hosts at a time, a release that fails its health
// check on one host midway — undone everywhere, while a client that asks
// every host without pause sees no failure — and a deploy with a host
// that cannot be reached.
func TestFleetRollout(t *testing.T) {
	hosts := needFleet(t)
	const app, name = "fleet", "fleet.test"
	a := newApp(t, app, 3400, hosts, "proxy:\n  hosts: ["+name+"]\n  drain_timeout: 2s\n"+
		"deploy:\n  max_in_flight: 3\n  canary: {hosts: 1, watch: 3s}\nssh:\n  parallel: 12\n")
	mustHoist(t, a.dir, "setup")

	out, stderr, err := deployJSON(t, a.dir)
	if err != nil {
		t.Fatalf("first deploy: %v\n%s", err, stderr)
	}
	r1 := out.Release
	from := map[string]int{}
	for _, h := range out.Hosts {
		if h.Transfer != nil {
			from[strings.Fields(h.Transfer.From)[0]]++
		}
	}
	if from["this"] != 1 || from["relay"] != fleetHosts-1 {
		t.Errorf("the release came from %v; want this machine once and relays for the rest\n%s", from, stderr)
	}
	verifyOnHosts(t, app, r1, hosts)

	tr := startTraffic(t, hosts, viaProxy(name))
	t.Run("rolling with a canary", func(t *testing.T) {
		a.change(t)
		out, stderr, err := deployJSON(t, a.dir)
		if err != nil || byStatus(out)[deploy.StatusDeployed] != fleetHosts {
			t.Fatalf("rolling deploy: %v %v\n%s", err, byStatus(out), stderr)
		}
		groups := map[int]int{}
		for _, h := range out.Hosts {
			groups[h.Group]++
		}
		if groups[1] != 1 || groups[2] != 3 || groups[5] != 2 || len(groups) != 5 {
			t.Errorf("groups %v; want a canary, then three at a time", groups)
		}
		// A one-line change: only what changed of the binary leaves this
		// machine (a chunk or a delta: the smaller), not its 4 MiB.
		seed := out.Hosts[0].Transfer
		if seed == nil || seed.From != "this machine" || seed.Objects+seed.Deltas == 0 || seed.Sent > 256<<10 {
			t.Errorf("the seed's transfer %+v; want a few KiB of the binary", seed)
		}
		verifyOnHosts(t, app, out.Release, hosts)
	})
	r2 := strings.TrimSpace(currents(t, app, hosts[:1])[hosts[0]])

	t.Run("failure midway is undone everywhere", func(t *testing.T) {
		// This release fails its health check on a host that holds the
		// file; the release it replaces does not look.
		bad := hosts[6] // in the third group
		dialLab(t, bad).Run(context.Background(), "touch /var/lib/hoist-fleet/fail", nil, io.Discard, io.Discard)
		defer dialLab(t, bad).Run(context.Background(), "rm -f /var/lib/hoist-fleet/fail", nil, io.Discard, io.Discard)
		a.edit(t, "main.go", `fmt.Fprintln(w, "ok")`, `if _, err := os.Stat("/var/lib/hoist-fleet/fail"); err == nil { w.WriteHeader(500); return }; fmt.Fprintln(w, "ok")`)
		out, stderr, err := deployJSON(t, a.dir)
		if err == nil {
			t.Fatalf("a deploy with a failing host succeeded\n%s", stderr)
		}
		want := map[string]int{deploy.StatusRolledBack: 6, deploy.StatusFailed: 1, deploy.StatusNotSwitched: 5}
		if got := byStatus(out); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("statuses %v, want %v\n%s", got, want, stderr)
		}
		for h, cur := range currents(t, app, hosts) {
			if cur != r2 {
				t.Errorf("%s serves %s after the failed deploy, want %s", h, cur, r2)
			}
		}
		if !strings.Contains(stderr, bad) || !strings.Contains(stderr, "rolled back") {
			t.Errorf("stderr does not say what happened per host:\n%s", stderr)
		}
	})
	tr.finish()
	tr.check(t, 200)

	t.Run("an unreachable host is reported", func(t *testing.T) {
		gone := strings.TrimSuffix(hosts[0], ".11") + ".250" // in the lab's subnet; nothing there
		args := []string{}
		for _, h := range append(hosts, gone) {
			args = append(args, "--host", h)
		}
		a.change(t)
		out, stderr, err := deployJSON(t, a.dir, args...)
		if err == nil {
			t.Error("a deploy with an unreachable host exited 0")
		}
		if got := byStatus(out); got[deploy.StatusDeployed] != fleetHosts || got[deploy.StatusUnreachable] != 1 {
			t.Errorf("statuses %v\n%s", got, stderr)
		}
		if !strings.Contains(stderr, gone) {
			t.Errorf("stderr does not name %s:\n%s", gone, stderr)
		}
	})
}

// TestFleetRelayKilled cuts a relay host's power while the others fetch
// from it: the survivor that holds the most is sent the rest from this
// machine and serves the others, they switch, the dead host is
// reported, no host holds anything but whole, checked releases; once
// the host is back, the next deploy takes over its stale lock and
// completes there too.
func TestFleetRelayKilled(t *testing.T) {
	hosts := needFleet(t)[:6]
	const app = "relaykill"
	a := newApp(t, app, 3410, hosts, "ssh:\n  parallel: 12\n")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	// A large file, and a slow link out of the seed, so that the others
	// are still fetching when it dies.
	big := make([]byte, 24<<20)
	if _, err := io.ReadFull(randReader{}, big); err != nil {
		t.Fatal(err)
	}
	a.write(t, "asset.bin", string(big))
	a.edit(t, "hoist.yml", "  command: CGO_ENABLED=0 go build -trimpath -o dist/hello .", "  command: CGO_ENABLED=0 go build -trimpath -o dist/hello . && cp asset.bin dist/")
	seedNS := "hoist-" + fleetLab + "-0"
	tc := func(args ...string) {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", seedNS, "tc"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("tc %v: %v\n%s", args, err, out)
		}
	}
	tc("qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "16mbit", "burst", "64kb", "latency", "400ms")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	type result struct {
		stdout, stderr string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		o, e, err := hoist(ctx, a.dir, "deploy", "--json")
		done <- result{o, e, err}
	}()
	// Wait until a fetching host holds part of the release, then cut
	// the seed's power.
	fetcher := dialLab(t, hosts[1])
	if !waittest.PollEvery(5*time.Minute, 200*time.Millisecond, func() bool {
		var out bytes.Buffer
		fetcher.Run(ctx, "stat -c %s /var/lib/hoist/"+app+"/uploads/*.pack 2>/dev/null || echo 0", nil, &out, io.Discard)
		var n int64
		fmt.Sscan(out.String(), &n)
		if n > 1<<20 {
			return true
		}
		select {
		case r := <-done:
			t.Fatalf("the deploy ended before the relay was cut: %v\n%s", r.err, r.stderr)
		default:
		}
		return false
	}) {
		t.Fatal("no host started fetching from the relay within 5 minutes")
	}
	if err := lab.PowerCut(fleetOptions(), hosts[0]); err != nil {
		t.Fatal(err)
	}
	r := <-done
	var out deploy.Outcome
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("no outcome: %v\n%s", err, r.stderr)
	}
	if r.err == nil || out.Hosts[0].Status == deploy.StatusDeployed {
		t.Errorf("the deploy reports its dead seed as %q, exit %v\n%s", out.Hosts[0].Status, r.err, r.stderr)
	}
	t.Logf("statuses with the seed dead: %v", byStatus(&out))
	// The others complete (the rest sent from here), or fail and keep
	// the release they had: nothing in between.
	cur := currents(t, app, hosts[1:])
	for _, h := range out.Hosts[1:] {
		switch {
		case h.Status == deploy.StatusDeployed && cur[h.Host] == out.Release:
		case h.Status != deploy.StatusDeployed && cur[h.Host] == r1:
		default:
			t.Errorf("%s: %s, and it serves %s", h.Host, h.Status, cur[h.Host])
		}
	}
	if !strings.Contains(r.stderr, "relay "+hosts[0]+" failed") {
		t.Errorf("the relay's death is not said:\n%s", r.stderr)
	}
	// The survivors serve each other: at most one of them is sent the
	// rest from here (it held the most), not all of them.
	fromHere := 0
	for _, h := range out.Hosts[1:] {
		if h.Transfer != nil && h.Transfer.From == "this machine" {
			fromHere++
		}
	}
	if fromHere > 1 {
		t.Errorf("%d survivors were sent the release from this machine, want at most 1\n%s", fromHere, r.stderr)
	}
	// Whatever arrived is either whole and checked, or not a release.
	for _, h := range hosts[1:] {
		var ls bytes.Buffer
		dialLab(t, h).Run(ctx, "ls /var/lib/hoist/"+app+"/releases", nil, &ls, io.Discard)
		for _, id := range strings.Fields(ls.String()) {
			if id == out.Release {
				verifyOnHosts(t, app, id, []string{h})
			} else if id != r1 {
				t.Errorf("%s holds %s in releases/", h, id)
			}
		}
	}

	// The seed boots again, still locked by the deploy that lost it, a
	// process of this machine that has ended: the next deploy takes the
	// lock over, says so, and completes.
	if _, err := lab.Up(ctx, fleetOptions(), fleetHosts); err != nil {
		t.Fatal(err)
	}
	tc("qdisc", "del", "dev", "eth0", "root")
	again, stderr, err := deployJSON(t, a.dir)
	if err != nil || byStatus(again)[deploy.StatusDeployed] != len(hosts) {
		t.Fatalf("deploy after the seed came back: %v %v\n%s", err, byStatus(again), stderr)
	}
	if !strings.Contains(stderr, hosts[0]+": warning: taking over the deploy lock of") {
		t.Errorf("the stale lock on the seed is not said to be taken over:\n%s", stderr)
	}
	verifyOnHosts(t, app, again.Release, hosts)
	a.wantServed(t, hosts, again.Release)
}

// randReader is an endless source of bytes that do not compress.
type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.ReadFull(f, p)
}
