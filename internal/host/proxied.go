package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/systemd"
)

// ProxySocket is the edge proxy's control socket on a host.
const ProxySocket = "/run/hoist/proxy.sock"

// installProxy writes and starts the edge proxy's units where they differ.
func installProxy(ctx context.Context, s *Spec) error {
	var flags []string
	if s.ACMEEmail != "" {
		flags = append(flags, "--acme-email", s.ACMEEmail)
	}
	if s.ACMECA != "" {
		flags = append(flags, "--acme-ca", s.ACMECA)
	}
	changed, err := writeUnits(ctx, map[string][]byte{
		systemd.ProxySocketName:  systemd.ProxySocket(),
		systemd.ProxyServiceName: systemd.ProxyService(BinPath, flags...),
	})
	if err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "enable", "--now", systemd.ProxySocketName, systemd.ProxyServiceName); err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	if changed {
		// A new hoist binary or unit: restart the proxy; the socket unit
		// keeps port 80 open meanwhile.
		if _, err := systemd.Systemctl(ctx, "restart", systemd.ProxyServiceName); err != nil {
			return fmt.Errorf("restart proxy: %w", err)
		}
	}
	return nil
}

func (l Layout) portFile(id string) string { return filepath.Join(l.Root, "ports", id+".env") }

// releasePort reads the port a release was given, 0 if none.
func (l Layout) releasePort(id string) int {
	b, err := os.ReadFile(l.portFile(id))
	if err != nil {
		return 0
	}
	v, _ := strings.CutPrefix(strings.TrimSpace(string(b)), "PORT=")
	n, _ := strconv.Atoi(v)
	return n
}

// activateProxied starts release id beside the running one, on the
// other of the app's two ports, waits for its health check, switches the
// proxy to it, waits for the old release to drain, and stops it. If the
// new release never turns healthy, the old one was never touched.
func activateProxied(ctx context.Context, l Layout, s *Spec, id string, log io.Writer) error {
	running, err := runningReleases(ctx, l)
	if err != nil {
		return err
	}
	used := map[int]bool{}
	var olds []string
	for _, r := range running {
		if r != id {
			olds = append(olds, r)
			used[l.releasePort(r)] = true
		}
	}
	port := s.Port
	if used[port] {
		port = s.Port + 1
	}
	if err := os.MkdirAll(filepath.Join(l.Root, "ports"), 0o755); err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	if err := writeFileAtomic(l.portFile(id), []byte("PORT="+strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return err
	}
	unit := systemd.InstanceName(l.App, id)
	fmt.Fprintf(log, "starting release %s on port %d beside %v\n", id, port, olds)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return failNew(ctx, l, id, err.Error())
	}
	if reason := waitHealthy(ctx, unit, port, s); reason != "" {
		return failNew(ctx, l, id, reason)
	}
	pc := &proxy.Client{Socket: ProxySocket}
	upstream := "127.0.0.1:" + strconv.Itoa(port)
	_, err = pc.SetRoute(ctx, proxy.Route{
		App: l.App, Hosts: s.ProxyHosts, PathPrefix: s.PathPrefix, Upstream: upstream,
		HealthPath: s.HealthPath, HealthTimeout: proxy.Duration{Duration: s.HealthTimeout},
		DrainTimeout: proxy.Duration{Duration: s.DrainTimeout}, TLS: s.TLS, HSTS: s.HSTS,
	})
	if err != nil {
		return failNew(ctx, l, id, "the proxy refused it: "+err.Error())
	}
	if err := swapSymlink("releases/"+id, l.Current()); err != nil {
		return err
	}
	fmt.Fprintf(log, "release %s is current\n", id)
	for _, old := range olds {
		addr := "127.0.0.1:" + strconv.Itoa(l.releasePort(old))
		dctx, cancel := context.WithTimeout(ctx, s.DrainTimeout+10*time.Second)
		if err := pc.WaitDrained(dctx, addr, s.DrainTimeout+5*time.Second); err != nil {
			fmt.Fprintf(log, "warning: %v\n", err)
		}
		cancel()
		if _, err := systemd.Systemctl(ctx, "stop", systemd.InstanceName(l.App, old)); err != nil {
			fmt.Fprintf(log, "warning: stop %s: %v\n", old, err)
		}
	}
	return nil
}

// failNew stops a release that did not make it; the old one still serves.
func failNew(ctx context.Context, l Layout, id, reason string) error {
	unit := systemd.InstanceName(l.App, id)
	he := &HealthError{ID: id, Reason: reason, Journal: systemd.JournalTail(ctx, unit, journalLines)}
	_, _ = systemd.Systemctl(ctx, "stop", unit)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	return he
}
