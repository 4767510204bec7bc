//go:build lab

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/loadtest"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/waittest"
)

// killGapBound bounds what a client waits when the proxy's main process
// is killed: systemd holds the listening sockets, so connections not yet
// accepted wait in the backlog while it restarts the proxy (RestartSec
// 100ms, then about 100ms to start on a lab host; the bound leaves room
// for a loaded machine). Only requests in flight in the killed process
// fail: at most one per client sending one request at a time.
const killGapBound = 3 * time.Second

// TestProxyUpgrade upgrades hoist's proxy on a lab host three times the
// way setup does it, each time with a new hoist binary, while clients
// send requests without pause over HTTP and HTTPS (tls: internal), with
// and without keep-alive, and hold a WebSocket: no request fails, the
// proxy is reloaded (a new main process) and never restarted, and the
// WebSocket is closed with 1001 and reconnects each time. Then the proxy's
// main process is killed with SIGKILL: systemd restarts it, and clients
// see at most one failed request each and a bounded gap. Before that, the
// proxy's files are given to root, as older hoists left them, and the
// proxy, restarted, serves on with them; and its unit's hardening score
// is checked.
func TestProxyUpgrade(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	plain := newApp(t, "zdu", 3500, hosts[:1], "proxy:\n  hosts: [zdu.test]\n")
	secure := newApp(t, "zdus", 3510, hosts[:1], "proxy:\n  hosts: [zdus.test]\n  tls: internal\n")
	for _, a := range []*appRepo{plain, secure} {
		mustHoist(t, a.dir, "setup")
		mustHoist(t, a.dir, "deploy")
	}
	roots := x509.NewCertPool()
	if pem := mustHoist(t, secure.dir, "proxy", "ca"); !roots.AppendCertsFromPEM([]byte(pem)) {
		t.Fatalf("hoist proxy ca printed no certificate:\n%s", pem)
	}
	_, leaf := getHTTPS(t, h, "zdus.test", roots) // the certificate is in
	wantExposure(t, h, "hoist-proxy.service", 2.0)
	bins := upgradeBinaries(t, 3)

	t.Run("state left by root", func(t *testing.T) {
		// Older hoists ran the proxy as root: its files were root's.
		// systemd hands them to hoist-proxy (StateDirectory=) at start.
		labRun(t, dialLab(t, h), "chown -R root:root /var/lib/hoist/proxy && systemctl restart hoist-proxy.service")
		if _, got := getHTTPS(t, h, "zdus.test", roots); got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("after the proxy took over root's files it serves certificate %s, want the stored %s", got.SerialNumber, leaf.SerialNumber)
		}
		plain.change(t)
		id := strings.TrimSpace(mustHoist(t, plain.dir, "deploy")) // the proxy saves the new route
		if got, err := get(http.DefaultClient, "http://"+h+"/", "zdu.test"); err != nil || strings.TrimSpace(got) != "hello from release "+id {
			t.Errorf("after a deploy the proxy serves %q, %v; want release %s", got, err, id)
		}
	})

	clients := func() []*loadtest.Loop {
		loop := func(name string, c *http.Client, url, host string) *loadtest.Loop {
			return &loadtest.Loop{Name: name, Send: func() (string, error) { return get(c, url, host) }}
		}
		return []*loadtest.Loop{
			loop("http keep-alive", &http.Client{Timeout: 10 * time.Second}, "http://"+h+"/", "zdu.test"),
			loop("http one-shot", &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
				"http://"+h+"/", "zdu.test"),
			loop("https h2", labHTTPS(h, roots, "zdus.test", true, true), "https://zdus.test/", "zdus.test"),
			loop("https h1 one-shot", labHTTPS(h, roots, "zdus.test", false, false), "https://zdus.test/", "zdus.test"),
		}
	}

	t.Run("upgrades", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		loops := loadtest.Start(&wg, stop, clients()...)
		var wsGoAway atomic.Int64
		var mu sync.Mutex
		var wsAbnormal []string
		wg.Go(func() {
			holdWebSockets(h, "zdu.test", stop, &wsGoAway, func(s string) {
				mu.Lock()
				wsAbnormal = append(wsAbnormal, s)
				mu.Unlock()
			})
		})
		stopped := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopped()
		loadtest.WaitServed(t, loops, 20, time.Minute)
		conn := dialLab(t, h)
		before := proxyService(t, conn)
		// For comparison, a setup that changes nothing, under the same
		// traffic: the gaps clients see then are the machine's noise.
		loadtest.LongestGap(loops)
		mustHoist(t, plain.dir, "setup")
		if now := proxyService(t, conn); now != before {
			t.Errorf("a setup that changed nothing changed hoist-proxy from %+v to %+v", before, now)
		}
		loadtest.WaitServed(t, loops, 20, time.Minute)
		idle := loadtest.LongestGap(loops)
		for _, bin := range bins {
			mustHoist(t, plain.dir, "setup", "--hoist-binary", bin)
			after := proxyService(t, conn)
			if after.pid == before.pid || after.restarts != before.restarts || after.state != "active" {
				t.Errorf("setup with a new binary: hoist-proxy went from %+v to %+v, want a new main process, no restart", before, after)
			}
			before = after
			loadtest.WaitServed(t, loops, 20, time.Minute)
		}
		stopped()
		failed := loadtest.Failed(t, loops) // logs each loop's gap, before it is taken
		t.Logf("longest gap between answers: %s across %d upgrades, %s across a setup that changed nothing",
			loadtest.LongestGap(loops).Round(time.Millisecond), len(bins), idle.Round(time.Millisecond))
		if failed != 0 {
			t.Errorf("%d requests failed across the upgrades", failed)
		}
		mu.Lock()
		defer mu.Unlock()
		if wsGoAway.Load() < int64(len(bins)) || len(wsAbnormal) != 0 {
			t.Errorf("WebSocket across %d upgrades: %d closes with 1001, other ends %v", len(bins), wsGoAway.Load(), wsAbnormal)
		}
	})

	t.Run("kill -9", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		loops := loadtest.Start(&wg, stop, clients()...)
		stopped := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopped()
		loadtest.WaitServed(t, loops, 20, time.Minute)
		conn := dialLab(t, h)
		before := proxyService(t, conn)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := conn.Run(ctx, fmt.Sprintf("kill -9 %d", before.pid), nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		var now serviceState
		if !waittest.PollEvery(30*time.Second, 100*time.Millisecond, func() bool {
			now = proxyService(t, conn)
			return now.pid != before.pid && now.pid != 0 && now.state == "active"
		}) {
			t.Fatalf("hoist-proxy not back 30s after its main process was killed: %+v", now)
		}
		t.Logf("hoist-proxy: main process %d killed, %d serves (restarts %d -> %d)", before.pid, now.pid, before.restarts, now.restarts)
		loadtest.WaitServed(t, loops, 20, time.Minute)
		stopped()
		failed := loadtest.Failed(t, loops)
		gap := loadtest.LongestGap(loops)
		t.Logf("kill -9 of the proxy: %d requests failed, longest gap %s", failed, gap.Round(time.Millisecond))
		if failed > int64(len(loops)) || gap > killGapBound {
			t.Errorf("kill -9: %d requests failed (bound %d, one in flight per client) and the longest gap was %s (bound %s)",
				failed, len(loops), gap, killGapBound)
		}
	})
}

// upgradeBinaries builds n hoist binaries that differ from hoistBin and
// from each other only in their build id, as a new hoist release would.
func upgradeBinaries(t *testing.T, n int) []string {
	t.Helper()
	var bins []string
	sums := map[string]bool{}
	for i := 1; i <= n; i++ {
		bin := filepath.Join(work, fmt.Sprintf("hoist-upgrade-%d", i))
		build := exec.Command("go", "build", "-ldflags=-X=main.e2eUpgrade="+fmt.Sprint(i), "-o", bin, "../cmd/hoist")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", bin, err, out)
		}
		bins = append(bins, bin)
	}
	for _, b := range append([]string{hoistBin}, bins...) {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		sums[fmt.Sprintf("%x", sha256.Sum256(data))] = true
	}
	if len(sums) != n+1 {
		t.Fatal("the rebuilt hoist binaries are not all different")
	}
	return bins
}

// serviceState is what systemd says of a service.
type serviceState struct {
	pid, restarts int
	state         string
}

func proxyService(t *testing.T, conn transport.Conn) serviceState {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Run(ctx, "systemctl show -p MainPID,NRestarts,ActiveState hoist-proxy.service", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	var u serviceState
	for _, line := range strings.Split(out.String(), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "MainPID":
			fmt.Sscan(v, &u.pid)
		case "NRestarts":
			fmt.Sscan(v, &u.restarts)
		case "ActiveState":
			u.state = v
		}
	}
	return u
}
