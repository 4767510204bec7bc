package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/usererr"
)

// ProxyRoot returns the PEM root certificate of the proxy's internal CA.
func ProxyRoot() (string, error) {
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

// proxyIssuer is how the host's proxy gets certificates. The proxy is
// shared by the host's apps, so it is kept on the host and changed only
// by the setup of an app that serves TLS: an app without TLS leaves
// another app's choice alone.
type proxyIssuer struct {
	Internal  bool   `json:"internal,omitempty"`
	ACMEEmail string `json:"acme_email,omitempty"`
	ACMECA    string `json:"acme_ca,omitempty"`
	ACMERoots string `json:"acme_roots,omitempty"` // PEM
}

func (p proxyIssuer) flags() []string {
	var flags []string
	if p.Internal {
		flags = append(flags, "--tls-internal")
	}
	if p.ACMEEmail != "" {
		flags = append(flags, "--acme-email", p.ACMEEmail)
	}
	if p.ACMECA != "" {
		flags = append(flags, "--acme-ca", p.ACMECA)
	}
	if p.ACMERoots != "" {
		flags = append(flags, "--acme-root", ProxyACMERootsPath)
	}
	return flags
}

// issuerFor returns the issuer the proxy should run with for s, and
// saves it if s chooses one.
func issuerFor(s *Spec, path string) (proxyIssuer, error) {
	var cur proxyIssuer
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cur); err != nil {
			return cur, fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return cur, fmt.Errorf("read proxy issuer: %w", err)
	}
	if !s.TLS {
		return cur, nil
	}
	want := proxyIssuer{Internal: s.TLSInternal, ACMEEmail: s.ACMEEmail, ACMECA: s.ACMECA, ACMERoots: s.ACMERoots}
	if want == cur {
		return cur, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return cur, fmt.Errorf("save proxy issuer: %w", err)
	}
	b, _ := json.Marshal(want)
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return cur, fmt.Errorf("save proxy issuer: %w", err)
	}
	return want, nil
}

// installProxy writes and starts the edge proxy's units where they differ.
func installProxy(ctx context.Context, s *Spec) error {
	issuer, err := issuerFor(s, ProxyIssuerPath)
	if err != nil {
		return err
	}
	if issuer.ACMERoots != "" {
		if err := atomicfile.Write(ProxyACMERootsPath, []byte(issuer.ACMERoots), 0o644); err != nil {
			return fmt.Errorf("write ACME roots: %w", err)
		}
	}
	flags := issuer.flags()
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
			used[l.heldPort(r, s.Port)] = true
		}
	}
	port := s.Port
	if used[port] {
		port = s.Port + 1
	}
	if _, err := l.newPorts(id, port); err != nil {
		return err
	}
	unit := systemd.InstanceName(l.App, id)
	fmt.Fprintf(log, "starting release %s on port %d beside %v\n", id, port, olds)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return failNew(ctx, l, id, err.Error(), log)
	}
	if reason := waitHealthy(ctx, unit, port, s); reason != "" {
		return failNew(ctx, l, id, reason, log)
	}
	pc := &proxy.Client{Socket: ProxySocket}
	upstream := "127.0.0.1:" + strconv.Itoa(port)
	maint, err := l.maintenance()
	if err != nil {
		return failNew(ctx, l, id, err.Error(), log)
	}
	_, err = pc.SetRoute(ctx, proxy.Route{
		App: l.App, Hosts: s.ProxyHosts, PathPrefix: s.PathPrefix, Upstream: upstream,
		HealthPath: s.HealthPath, HealthTimeout: proxy.Duration{Duration: s.HealthTimeout},
		DrainTimeout: proxy.Duration{Duration: s.DrainTimeout}, TLS: s.TLS, HSTS: s.HSTS,
		MaxBodyBytes: s.MaxBodyBytes, Pages: s.ErrorPages, Maintenance: maint,
	})
	if err != nil {
		return failNew(ctx, l, id, "the proxy refused it: "+err.Error(), log)
	}
	if err := swapSymlink("releases/"+id, l.Current()); err != nil {
		return err
	}
	fmt.Fprintf(log, "release %s is current\n", id)
	for _, old := range olds {
		addr := "127.0.0.1:" + strconv.Itoa(l.heldPort(old, s.Port))
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
func failNew(ctx context.Context, l Layout, id, reason string, log io.Writer) error {
	return stopFailed(ctx, l, id, reason, log)
}
