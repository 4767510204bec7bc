//go:build lab

package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/ptytest"
	"github.com/hoistdev/hoist/internal/transport"
)

// Issue 13's proof: the Elixir example behind the proxy (tls: internal)
// on two hosts, through five deploys, two broken releases (one fails its
// health check, one crashes at boot) and two rollbacks in a row, with a
// client sending requests without pause. No request fails; every deploy
// and rollback takes less than maxStep; after each step rpc reaches the
// current release's node on both hosts, each host's epmd and Erlang
// distribution port are closed to the other host, and the only epmd
// running is the serving release's, in its unit; the second rollback
// reaches the release before last. Each host keeps every activation's
// log, pruned with its release. Then two deploys of one commit at once,
// and a third that succeeds, its release going on serving, untouched.
func TestErlangReleasesDoneRight(t *testing.T) {
	hosts := needLab(t)
	const name = "erl.test"
	p := &erlangProof{t: t, hosts: hosts, conns: map[string]transport.Conn{}}
	p.a = newElixirApp(t, "erl", 4020, hosts, elixirRootfs,
		"proxy:\n  hosts: ["+name+"]\n  tls: internal\n  drain_timeout: 2s\nkeep_releases: 3\n")
	// A release that never answers its health check fails in seconds;
	// one that does is seen at once.
	p.a.edit(t, "hoist.yml", "timeout: 60s\n  interval: 500ms", "timeout: "+brokenHealthTimeout.String()+"\n  interval: 200ms")
	for _, h := range hosts {
		p.conns[h] = dialLab(t, h)
	}
	// The build's root tree and the app's dependencies are made once,
	// before the deploys are timed.
	mustHoist(t, p.a.dir, "build")

	var good []string
	good = append(good, p.deploy("deploy 1"))
	roots := x509.NewCertPool()
	if pem := mustHoist(t, p.a.dir, "proxy", "ca"); !roots.AppendCertsFromPEM([]byte(pem)) {
		t.Fatalf("hoist proxy ca printed no certificate:\n%s", pem)
	}
	for _, h := range hosts {
		getHTTPS(t, h, name, roots) // certificates issued before the client starts
	}
	tr := startTraffic(t, hosts, viaProxyTLS(name, roots))
	p.check("deploy 1", good[0])

	for i := 2; i <= 3; i++ {
		good = append(good, p.deploy(fmt.Sprintf("deploy %d", i)))
		p.check(fmt.Sprintf("deploy %d", i), good[len(good)-1])
	}

	web := "lib/hello_elixir/web.ex"
	p.a.edit(t, web, `reply(200, "ok\n")`, `reply(500, "broken\n")`)
	if stderr := p.fail("the release whose health check fails"); !strings.Contains(stderr, "answered 500") {
		t.Errorf("the failed health check is not named:\n%s", stderr)
	}
	p.check("the failed health check", good[2])
	p.a.edit(t, web, `reply(500, "broken\n")`, `reply(200, "ok\n")`)
	good = append(good, p.deploy("deploy 4"))
	p.check("deploy 4", good[3])

	app := "lib/hello_elixir/application.ex"
	p.a.edit(t, app, "    port = ", "    if System.get_env(\"HOIST_RELEASE\"), do: raise(\"crash at boot\")\n    port = ")
	if stderr := p.fail("the release that crashes at boot"); !strings.Contains(stderr, "the service exited") {
		t.Errorf("the crash at boot is not named:\n%s", stderr)
	}
	p.check("the crash at boot", good[3])
	p.a.edit(t, app, "    if System.get_env(\"HOIST_RELEASE\"), do: raise(\"crash at boot\")\n", "")
	good = append(good, p.deploy("deploy 5"))
	p.check("deploy 5", good[4])

	p.rollback("rollback 1")
	p.check("rollback 1", good[3])
	p.rollback("rollback 2")
	p.check("rollback 2", good[2])

	p.logsPrunedWithReleases()

	// Two deploys of one commit at once (two terminals, or CI and a
	// person), then a third: one release id names one content, the third
	// succeeds, and the release it deploys again goes on serving.
	p.a.write(t, "CHANGES", "at once\n")
	p.a.commit(t, "at once")
	ids := p.concurrentDeploys()
	third := strings.TrimSpace(p.timed("the third deploy", maxStep, true, "--verbose", "deploy"))
	if len(ids) > 0 && !slices.Contains(ids, third) {
		t.Errorf("the third deploy shipped %s, the two before it %v: one commit, two releases", third, ids)
	}
	p.check("the third deploy", third)
	for _, h := range hosts {
		if out := p.run(h, "tail -n 2 /var/lib/hoist/erl/activations/"+third+".log"); !strings.Contains(out, "goes on serving") {
			t.Errorf("%s restarted the release deployed again:\n%s", h, out)
		}
	}

	tr.finish()
	tr.check(t, 200)
	for _, id := range append(good, third) {
		if tr.answers(id) == 0 {
			t.Errorf("release %s never answered through the proxy", id)
		}
	}
}

// brokenHealthTimeout is the example's health.timeout in the proof;
// maxStep bounds every deploy and rollback that succeeds.
const (
	brokenHealthTimeout = 8 * time.Second
	maxStep             = 10 * time.Second
)

// erlangProof runs the steps of TestErlangReleasesDoneRight and checks
// each host after each.
type erlangProof struct {
	t     *testing.T
	a     *appRepo
	hosts []string
	conns map[string]transport.Conn
	n     int // good deploys so far
}

// deploy commits a change and deploys it with --verbose, within maxStep;
// it returns the release id.
func (p *erlangProof) deploy(step string) string {
	p.t.Helper()
	p.n++
	p.a.write(p.t, "CHANGES", fmt.Sprintf("change %d\n", p.n))
	p.a.commit(p.t, step)
	return strings.TrimSpace(p.timed(step, maxStep, true, "--verbose", "deploy"))
}

// rollback rolls back with --verbose, within maxStep.
func (p *erlangProof) rollback(step string) {
	p.t.Helper()
	p.timed(step, maxStep, true, "--verbose", "rollback")
}

// fail deploys the last commit, which must fail on every host within
// its health timeout and a build; it returns hoist's stderr.
func (p *erlangProof) fail(step string) string {
	p.t.Helper()
	return p.timed(step, brokenHealthTimeout+maxStep, false, "deploy")
}

// timed runs hoist, which must succeed (or fail, with ok false) within
// limit; it returns stdout, or stderr for a failure. A successful step
// ran with --verbose: each host's activation log is shown, prefixed with
// the host, and says that stopping the old release took no time.
func (p *erlangProof) timed(step string, limit time.Duration, ok bool, args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	stdout, stderr, err := hoist(ctx, p.a.dir, args...)
	took := time.Since(start)
	p.t.Logf("%s took %.1fs", step, took.Seconds())
	if (err == nil) != ok {
		p.t.Fatalf("%s: hoist %s: %v (want ok=%v)\nstdout:\n%s\nstderr:\n%s", step, strings.Join(args, " "), err, ok, stdout, stderr)
	}
	if took > limit {
		p.t.Errorf("%s took %.1fs, more than %s:\n%s", step, took.Seconds(), limit, stderr)
	}
	if !ok {
		return stderr
	}
	for _, h := range p.hosts {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(h) + `: +[0-9.]+s done$`).MatchString(stderr) {
			p.t.Errorf("%s: --verbose shows no activation log of %s:\n%s", step, h, stderr)
		}
	}
	for _, m := range regexp.MustCompile(`stopped release \S+ in ([0-9.]+)s`).FindAllStringSubmatch(stderr, -1) {
		// Far below TimeoutStopSec: no epmd or other process holds a
		// release's unit up when it stops.
		if s, _ := strconv.ParseFloat(m[1], 64); s > 5 {
			p.t.Errorf("%s: %s", step, m[0])
		}
	}
	return stdout
}

// check asserts, after a step, what must hold on every host while
// release id serves.
func (p *erlangProof) check(step, id string) {
	p.t.Helper()
	p.rpcReaches(step, id)
	for i, h := range p.hosts {
		other := p.hosts[1-i]
		ports := p.erlangPorts(step, h, id)
		p.closedFrom(step, other, h, ports)
	}
}

// rpcReaches asserts that `hoist exec -- bin/hello_elixir rpc` prints ok
// on every host, from the node of release id.
func (p *erlangProof) rpcReaches(step, id string) {
	p.t.Helper()
	out := mustHoist(p.t, p.a.dir, "exec", "--", "bin/hello_elixir", "rpc", `IO.puts(:ok); IO.puts(System.get_env("HOIST_RELEASE"))`)
	for _, h := range p.hosts {
		want := h + " | ok\n" + h + " | " + id + "\n"
		if got := linesOf(out, h+" | "); got != want {
			p.t.Errorf("after %s, rpc on %s printed %q, want %q", step, h, got, want)
		}
	}
}

// linesOf keeps the lines of out that start with prefix.
func linesOf(out, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// erlangPorts checks that on host h the only epmd of the app is release
// id's, inside its running unit, and that every port the app's epmd and
// node listen on, but its HTTP port, is bound to loopback. It returns
// those ports.
func (p *erlangProof) erlangPorts(step, h, id string) []int {
	p.t.Helper()
	// Each epmd of the app: its pid, the release its binary is from, its
	// cgroup; then the app's units that run.
	script := `ours() { case "$(readlink /proc/$1/exe)" in /var/lib/hoist/erl/*) return 0;; esac; return 1; }
for pid in $(pgrep -x epmd); do ours $pid && echo "epmd $(readlink /proc/$pid/exe) $(sed -n 's/^0:://p' /proc/$pid/cgroup)"; done
systemctl list-units --state=active --plain --no-legend 'hoist-erl@*.service' | awk '{print "unit " $1}'
ss -Hltnp | while read -r _ _ _ local _ users; do pid=$(echo "$users" | sed -n 's/.*pid=\([0-9]*\).*/\1/p'); ours "$pid" && echo "listen $local"; done
true`
	out := p.run(h, script)
	var epmds, units []string
	var ports []int
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "epmd":
			if want := "hoist-erl@" + id + ".service"; !strings.Contains(f[1], "/releases/"+id+"/") || !strings.Contains(f[2], want) {
				p.t.Errorf("after %s, %s runs an epmd that is not release %s's, in its unit: %s in %s", step, h, id, f[1], f[2])
			}
			epmds = append(epmds, f[1])
		case len(f) == 2 && f[0] == "unit":
			units = append(units, f[1])
		case len(f) == 2 && f[0] == "listen":
			i := strings.LastIndexByte(f[1], ':')
			addr, port := f[1][:i], f[1][i+1:]
			n, _ := strconv.Atoi(port)
			if n == p.a.port || n == p.a.port+1 {
				continue // the app's own HTTP port, behind the proxy
			}
			if addr != "127.0.0.1" && addr != "[::1]" {
				p.t.Errorf("after %s, an Erlang port of %s listens on %s", step, h, f[1])
			}
			ports = append(ports, n)
		}
	}
	if len(epmds) != 1 || !slices.Equal(units, []string{"hoist-erl@" + id + ".service"}) {
		p.t.Errorf("after %s, %s runs units %v and epmds %v; want release %s's, one each", step, h, units, epmds, id)
	}
	if len(ports) < 2 {
		p.t.Errorf("after %s, %s: found %v as epmd and distribution ports, want both:\n%s", step, h, ports, out)
	}
	return ports
}

// closedFrom asserts that from host from, none of ports on host to
// answers, while its SSH port does.
func (p *erlangProof) closedFrom(step, from, to string, ports []int) {
	p.t.Helper()
	var b strings.Builder
	for _, port := range append([]int{22}, ports...) {
		fmt.Fprintf(&b, "if timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%d' 2>/dev/null; then echo open %d; else echo closed %d; fi\n", to, port, port, port)
	}
	out := p.run(from, b.String())
	if !strings.Contains(out, "open 22\n") {
		p.t.Fatalf("after %s, %s cannot reach %s at all, so closed ports prove nothing:\n%s", step, from, to, out)
	}
	for _, port := range ports {
		if !strings.Contains(out, fmt.Sprintf("closed %d\n", port)) {
			p.t.Errorf("after %s, port %d of %s answers %s", step, port, to, from)
		}
	}
}

// logsPrunedWithReleases asserts that each host keeps an activation log
// for each release on it and no other, the current one's ending well.
func (p *erlangProof) logsPrunedWithReleases() {
	p.t.Helper()
	for _, h := range p.hosts {
		out := p.run(h, `cd /var/lib/hoist/erl && ls releases; echo --; ls activations | sed 's/\.log$//'; echo --; tail -n 1 activations/$(basename $(readlink current)).log`)
		parts := strings.Split(out, "--\n")
		if len(parts) != 3 {
			p.t.Fatalf("%s: %q", h, out)
		}
		if parts[0] != parts[1] {
			p.t.Errorf("%s holds releases\n%sand activation logs\n%s", h, parts[0], parts[1])
		}
		if !strings.HasSuffix(parts[2], " done\n") {
			p.t.Errorf("%s: the current release's activation log ends %q", h, parts[2])
		}
	}
}

// concurrentDeploys runs two deploys of the last commit at once and
// returns the release ids of those that succeeded; one that fails must
// fail for the other's lock.
func (p *erlangProof) concurrentDeploys() []string {
	p.t.Helper()
	results := hoistAtOnce(p.a.dir, 2, "deploy")
	var ids []string
	for i, r := range results {
		switch {
		case r.err == nil:
			ids = append(ids, strings.TrimSpace(r.stdout))
		case !strings.Contains(r.stderr, "another deploy holds the lock"):
			p.t.Errorf("concurrent deploy %d failed for another reason than the lock: %v\n%s", i, r.err, r.stderr)
		}
	}
	p.t.Logf("of two deploys at once, %d succeeded: %v", len(ids), ids)
	if len(ids) == 0 {
		p.t.Errorf("neither of two concurrent deploys succeeded:\n%s\n%s", results[0].stderr, results[1].stderr)
	}
	if len(ids) == 2 && ids[0] != ids[1] {
		p.t.Errorf("two deploys of one commit made two releases: %v", ids)
	}
	return ids
}

// run runs a shell script as root on host h and returns its stdout.
func (p *erlangProof) run(h, script string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb strings.Builder
	if err := p.conns[h].Run(ctx, script, nil, &out, &errb); err != nil {
		p.t.Fatalf("on %s: %v\n%s", h, err, errb.String())
	}
	return out.String()
}

// TestErlangNodesOnAPrivateNetwork: with run.erlang.listen naming the
// hosts' network, each release's node listens on its host's address
// there, and the nodes of one release on two hosts connect, with the
// cookie given as a secret.
func TestErlangNodesOnAPrivateNetwork(t *testing.T) {
	hosts := needLab(t)
	network := hosts[0][:strings.LastIndexByte(hosts[0], '.')] + ".0/24"
	a := newElixirApp(t, "erlnet", 4030, hosts, elixirRootfs, "")
	a.edit(t, "hoist.yml", "  port: 4030\n", "  port: 4030\n  erlang:\n    listen: "+network+"\n")
	// The nodes of two hosts connect with one cookie, a secret: each
	// host made one of its own.
	if stderr := failHoist(t, a.dir, "deploy"); !strings.Contains(stderr, "hoist secrets gen RELEASE_COOKIE") {
		t.Errorf("a deploy to nodes on a network without a cookie of theirs does not say what to do:\n%s", stderr)
	}
	mustHoist(t, a.dir, "secrets", "gen", "RELEASE_COOKIE")
	a.commit(t, "the nodes' cookie")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	node := func(h string) string { return "erlnet-" + id + "@" + h }
	out := mustHoist(t, a.dir, "exec", "--host", hosts[0], "--", "bin/hello_elixir", "rpc",
		fmt.Sprintf(`IO.puts(node()); IO.puts(Node.connect(:"%s")); IO.puts(:rpc.call(:"%s", System, :get_env, ["HOIST_RELEASE"]))`, node(hosts[1]), node(hosts[1])))
	if want := node(hosts[0]) + "\ntrue\n" + id + "\n"; out != want {
		t.Errorf("the node on %s printed %q, want %q: its name, connected to %s, and the release there", hosts[0], out, want, node(hosts[1]))
	}
}

// TestExecOnATerminal: `hoist exec -t` runs a command on a terminal of
// the host the size of this one, with echo, and passes its exit status
// on; `bin/APP remote` is a remote shell on the current release's node,
// which goes on serving once the shell quits.
func TestExecOnATerminal(t *testing.T) {
	hosts := needLab(t)
	a := newElixirApp(t, "erltty", 4040, hosts[:1], elixirRootfs, "")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	tm := startOnTerminal(t, a.dir, "exec", "-t", "--", "sh", "-c", `tty; stty size; read line; echo "got $line"; exit 3`)
	tm.expect("33 111\r\n")
	tm.send("typed\r")
	tm.expect("typed\r\ngot typed\r\n") // echoed as typed, then read
	if code := tm.wait(); code != 3 {
		t.Errorf("exec -t exited %d, want the command's 3", code)
	}
	if !strings.Contains(tm.output(), "/dev/pts/") {
		t.Errorf("the command had no terminal:\n%s", tm.output())
	}

	tm = startOnTerminal(t, a.dir, "exec", "-t", "--", "bin/hello_elixir", "remote")
	tm.expect("iex(erltty-" + id + "@127.0.0.1)1> ")
	tm.send(`IO.puts(System.get_env("HOIST_RELEASE"))` + "\r")
	tm.expect(id + "\r\n")
	tm.send("\x07") // ^G: the shell's user switch; q quits this node only
	tm.expect("-->")
	tm.send("q\r")
	if code := tm.wait(); code != 0 {
		t.Errorf("the remote shell exited %d:\n%s", code, tm.output())
	}
	a.wantServed(t, hosts[:1], id)
}

// terminal is hoist run on a pseudo-terminal of 111x33, as by a person.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptm  *os.File
	mu   sync.Mutex
	out  []byte
	more chan struct{} // a token when output arrives
}

func startOnTerminal(t *testing.T, dir string, args ...string) *terminal {
	t.Helper()
	ptm, pts, err := ptytest.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close() })
	defer pts.Close()
	if err := ptytest.SetSize(pts, 111, 33); err != nil {
		t.Fatal(err)
	}
	tm := &terminal{t: t, ptm: ptm, more: make(chan struct{}, 1)}
	tm.cmd = exec.Command(hoistBin, args...)
	tm.cmd.Dir = dir
	tm.cmd.Env = append(hoistEnv, "TERM=xterm")
	tm.cmd.Stdin, tm.cmd.Stdout, tm.cmd.Stderr = pts, pts, pts
	if err := tm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			tm.mu.Lock()
			tm.out = append(tm.out, b[:n]...)
			tm.mu.Unlock()
			select {
			case tm.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return tm
}

func (tm *terminal) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return string(tm.out)
}

// expect waits, a minute at most, until the terminal has shown s.
func (tm *terminal) expect(s string) {
	tm.t.Helper()
	deadline := time.After(time.Minute)
	for !strings.Contains(tm.output(), s) {
		select {
		case <-tm.more:
		case <-deadline:
			tm.cmd.Process.Kill()
			tm.t.Fatalf("the terminal never showed %q; it shows:\n%q", s, tm.output())
		}
	}
}

// send types s.
func (tm *terminal) send(s string) {
	tm.t.Helper()
	if _, err := io.WriteString(tm.ptm, s); err != nil {
		tm.t.Fatal(err)
	}
}

// wait waits, a minute at most, for hoist to exit and returns its status.
func (tm *terminal) wait() int {
	tm.t.Helper()
	done := make(chan error, 1)
	go func() { done <- tm.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		tm.cmd.Process.Kill()
		tm.t.Fatalf("hoist did not exit; the terminal shows:\n%q", tm.output())
	}
	return tm.cmd.ProcessState.ExitCode()
}
