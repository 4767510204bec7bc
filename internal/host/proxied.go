package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/usererr"
)

// proxyRoot returns the PEM root certificate of the proxy's internal CA.
func proxyRoot() (string, error) {
	b, err := os.ReadFile(ProxyRootPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", usererr.New("the edge proxy on this host has no internal CA (%s)", ProxyRootPath).
			WithHint("set proxy.tls: internal in hoist.yml, run hoist setup, then deploy")
	}
	if err != nil {
		return "", fmt.Errorf("read proxy root: %w", err)
	}
	return string(b), nil
}

// issuerFor returns the issuer the proxy should run with for s, and
// saves it if s chooses one. The proxy is shared by the host's apps, so
// the issuer is kept on the host and changed only by the setup of an app
// that serves TLS: an app without TLS leaves another app's choice alone.
func issuerFor(s *hostproto.Spec, path string) (certs.Issuer, error) {
	cur, err := certs.ReadIssuer(path)
	if err != nil || !s.TLS {
		return cur, err
	}
	want := certs.Issuer{Internal: s.TLSInternal, ACMEEmail: s.ACMEEmail, ACMECA: s.ACMECA, ACMERoots: s.ACMERoots}
	if want == cur {
		return cur, nil
	}
	if err := want.Validate(); err != nil {
		return cur, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return cur, fmt.Errorf("save proxy issuer: %w", err)
	}
	b, _ := json.Marshal(want)
	// Readable by the proxy's user; it holds no secret.
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return cur, fmt.Errorf("save proxy issuer: %w", err)
	}
	return want, nil
}

// proxyUnit is the proxy's service unit as this hoist writes it, with
// the trusted proxies and balancers of the host's apps.
func proxyUnit(t trusted) ([]byte, error) {
	args := []string{"--state", ProxyStatePath, "--storage", ProxyStorage, "--issuer", ProxyIssuerPath,
		"--metrics", "127.0.0.1:9180"}
	for _, p := range t.proxies {
		args = append(args, "--trusted-proxy", p)
	}
	for _, b := range t.balancers {
		args = append(args, "--trusted-balancer", b)
	}
	return systemd.ProxyService(systemd.Proxy{
		HoistBin: BinPath, User: ProxyUser, Control: ProxySocket,
		RuntimeDir: strings.TrimPrefix(filepath.Dir(ProxySocket), "/run/"),
		StateDir:   strings.TrimPrefix(ProxyDir, "/var/lib/"),
		Args:       args,
	})
}

// trusted are the networks the proxy keeps headers about the client
// from: every one of them from proxies, X-Forwarded-For, -Proto and
// -Port from balancers.
type trusted struct{ proxies, balancers []string }

// balancerLine marks a balancer's network in an app's file of trusted
// networks; a line without it is a proxy's.
const balancerLine = "balancer "

// trustedProxies keeps s's trusted proxies and balancers in dir, one
// file per app, and returns those of every app there, sorted and once
// each: the proxy is the host's, and trusts what any of its apps lists.
// A network both trusts as a proxy and as a balancer is a balancer's:
// trusted with less.
func trustedProxies(dir string, s *hostproto.Spec) (trusted, error) {
	path := filepath.Join(dir, s.App)
	if len(s.TrustedProxies) == 0 && len(s.TrustedBalancers) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return trusted{}, fmt.Errorf("trusted proxies: %w", err)
		}
	} else {
		var b strings.Builder
		for i, list := range [][]string{s.TrustedProxies, s.TrustedBalancers} {
			for _, t := range list {
				p, err := netip.ParsePrefix(t)
				if err != nil || p.Bits() == 0 {
					return trusted{}, fmt.Errorf("trusted proxy %q of %s is not a network", t, s.App)
				}
				if i == 1 {
					b.WriteString(balancerLine)
				}
				b.WriteString(p.Masked().String() + "\n")
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return trusted{}, fmt.Errorf("trusted proxies: %w", err)
		}
		if err := atomicfile.Write(path, []byte(b.String()), 0o644); err != nil {
			return trusted{}, fmt.Errorf("trusted proxies: %w", err)
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return trusted{}, fmt.Errorf("trusted proxies: %w", err)
	}
	var all trusted
	for _, f := range files {
		if names.CheckApp(f.Name()) != "" {
			continue // a temporary file of a write
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			return trusted{}, fmt.Errorf("trusted proxies: %w", err)
		}
		for line := range strings.Lines(string(b)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), balancerLine); ok {
				all.balancers = append(all.balancers, strings.TrimSpace(n))
			} else if line = strings.TrimSpace(line); line != "" {
				all.proxies = append(all.proxies, line)
			}
		}
	}
	slices.Sort(all.proxies)
	slices.Sort(all.balancers)
	all.balancers = slices.Compact(all.balancers)
	all.proxies = slices.DeleteFunc(slices.Compact(all.proxies), func(p string) bool { return slices.Contains(all.balancers, p) })
	return all, nil
}

// installProxy writes the edge proxy's units where they differ and
// makes sure the proxy runs this hoist binary with the host's issuer.
// New units restart it (systemd holds the listening sockets meanwhile);
// a new binary or issuer alone is a reload, an upgrade without a gap
// (docs/proxy.md).
func installProxy(ctx context.Context, s *hostproto.Spec) error {
	if err := ensureUser(ctx, ProxyUser); err != nil {
		return err
	}
	issuer, err := issuerFor(s, ProxyIssuerPath)
	if err != nil {
		return err
	}
	trust, err := trustedProxies(ProxyTrusted, s)
	if err != nil {
		return err
	}
	// A change of them changes the unit, which restarts the proxy: its
	// upgrade in place keeps the command line it started with.
	service, err := proxyUnit(trust)
	if err != nil {
		return err
	}
	changed, err := writeUnits(ctx, map[string][]byte{
		systemd.ProxySocketName:  systemd.ProxySocket(),
		systemd.ProxyServiceName: service,
	})
	if err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "enable", "--now", systemd.ProxySocketName, systemd.ProxyServiceName); err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	if changed {
		if _, err := systemd.Systemctl(ctx, "restart", systemd.ProxyServiceName); err != nil {
			return fmt.Errorf("restart proxy: %w", err)
		}
		return nil
	}
	running, err := (&proxy.Client{Socket: ProxySocket}).Process(ctx)
	if err != nil {
		return fmt.Errorf("ask the proxy what it runs: %w", err)
	}
	if why := proxyStale(running, BinPath, issuer); why != "" {
		if _, err := systemd.Systemctl(ctx, "reload", systemd.ProxyServiceName); err != nil {
			return fmt.Errorf("upgrade proxy (%s): %w\n%s", why, err, systemd.JournalTail(ctx, systemd.ProxyServiceName, journalLines))
		}
	}
	return nil
}

// proxyStale says why the running proxy should be upgraded: it is not
// the binary at bin, or runs with other issuer settings; "" if neither.
func proxyStale(running proxy.Process, bin string, issuer certs.Issuer) string {
	exe, err := os.Stat(filepath.Join(procDir, strconv.Itoa(running.PID), "exe"))
	if b, berr := os.Stat(bin); err != nil || berr != nil || !os.SameFile(exe, b) {
		return "a new hoist binary"
	}
	if running.Issuer != issuer.Fingerprint() {
		return "new issuer settings"
	}
	return ""
}

// procDir is where proxyStale finds a process's executable.
var procDir = "/proc"

// activateProxied starts release id beside the running one, on the
// other of the app's two ports, waits for its health check, switches the
// proxy to it, waits for the old release to drain, and stops it. If the
// new release never turns healthy, the old one was never touched.
func activateProxied(ctx context.Context, l Layout, s *hostproto.Spec, id string, log io.Writer) error {
	running, err := runningReleases(ctx, l)
	if err != nil {
		return err
	}
	if slices.Contains(running, id) {
		// The same release deployed again (a commit that changed nothing
		// the build sees, a revert to the release that serves): it cannot
		// start beside itself.
		if len(running) == 1 && id == l.CurrentID() && l.startedAsNow(id) {
			fmt.Fprintf(log, "release %s is current and runs with these units, secrets and accessories: it goes on serving\n", id)
			return nil
		}
		if id == l.CurrentID() {
			// Its environment changed since it started: it restarts, and
			// its twin serves meanwhile.
			fmt.Fprintf(log, "release %s is current, but its units, secrets or accessories changed after it started: restarting it beside itself\n", id)
			return restartBeside(ctx, l, s, id, running, log)
		}
		fmt.Fprintf(log, "warning: restarting release %s in place, since it runs but does not serve: "+
			"requests to it fail until it is up again\n", id)
	}
	used := map[int]bool{}
	var olds []string
	for _, r := range running {
		if r != id {
			olds = append(olds, r)
			used[l.heldPort(r, s.Port)] = true
		}
	}
	port := s.Port
	if used[port] {
		port = s.Port + 1
	}
	if !slices.Contains(running, id) {
		if err := claimPort(ctx, port); err != nil {
			return err
		}
	}
	if _, err := l.newPorts(id, port, s.ErlangNetwork); err != nil {
		return err
	}
	unit := systemd.InstanceName(l.App, id)
	fmt.Fprintf(log, "starting release %s on port %d beside %v\n", id, port, olds)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return failNew(ctx, l, id, err.Error(), log)
	}
	if reason := waitHealthy(ctx, unit, port, s, log); reason != "" {
		return failNew(ctx, l, id, reason, log)
	}
	pc := &proxy.Client{Socket: ProxySocket}
	if err := setRoute(ctx, l, s, port); err != nil {
		return failNew(ctx, l, id, "the proxy refused it: "+err.Error(), log)
	}
	if err := swapSymlink("releases/"+id, l.Current()); err != nil {
		return err
	}
	fmt.Fprintf(log, "release %s is current\n", id)
	for _, old := range olds {
		addr := "127.0.0.1:" + strconv.Itoa(l.heldPort(old, s.Port))
		fmt.Fprintf(log, "waiting for release %s's requests to finish, for up to %s\n", old, s.DrainTimeout)
		dctx, cancel := context.WithTimeout(ctx, s.DrainTimeout+10*time.Second)
		if err := pc.WaitDrained(dctx, addr, s.DrainTimeout+5*time.Second); err != nil {
			fmt.Fprintf(log, "warning: %v\n", err)
		}
		cancel()
		if err := stopRelease(ctx, l, old, log); err != nil {
			fmt.Fprintf(log, "warning: %v\n", err)
		}
		if of, ok := strings.CutSuffix(old, twinSuffix); ok {
			l.removeTwin(of) // left by a restart cut short
		}
	}
	return nil
}

// failNew stops a release that did not make it; the old one still serves.
func failNew(ctx context.Context, l Layout, id, reason string, log io.Writer) error {
	return stopFailed(ctx, l, id, reason, log)
}
