package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/systemd"
)

// twinSuffix names the stand-in of a release that restarts behind the
// proxy: instance ID-twin runs the same release (releases/ID-twin links
// to it) on the other of the app's ports. It is no release id, so
// listings and pruning pass it by.
const twinSuffix = "-twin"

// restart starts the current release again, with the units, secrets and
// accessories' URLs as they are now. Behind the proxy no request fails:
// a twin of the release starts beside it and takes the traffic while
// the release restarts, then hands it back (restartBeside). Without the
// proxy the release restarts in place.
func restart(ctx context.Context, l Layout, s *hostproto.Spec, log io.Writer) (string, error) {
	id := l.CurrentID()
	if id == "" {
		return "", errors.New("no release is current: deploy one first")
	}
	if _, err := installUnits(ctx, l, s); err != nil {
		return id, err
	}
	if s.Proxied() {
		running, err := runningReleases(ctx, l)
		if err != nil {
			return id, err
		}
		if slices.Contains(running, id) {
			return id, restartBeside(ctx, l, s, id, running, log)
		}
		// Not running (stopped, or failed): start it as a deploy would.
		return id, activateProxied(ctx, l, s, id, log)
	}
	unit := systemd.InstanceName(l.App, id)
	if _, err := l.newPorts(id, s.Port, s.ErlangNetwork); err != nil {
		return id, err
	}
	fmt.Fprintf(log, "restarting release %s in place (without the proxy requests fail until it is up)\n", id)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return id, fmt.Errorf("restart %s: %w", id, err)
	}
	if reason := waitHealthy(ctx, unit, s.Port, s, log); reason != "" {
		return id, &hostproto.HealthError{ID: id, Reason: reason, Journal: systemd.JournalTail(ctx, unit, journalLines)}
	}
	return id, nil
}

// restartBeside restarts release id, which serves behind the proxy,
// without a failed request: its twin starts on the other port and,
// once healthy, takes the traffic; id restarts, turns healthy, takes
// the traffic back, and the twin drains and stops. Should the twin not
// turn healthy, id was never touched. The other releases running
// (left by a deploy cut short) drain and stop at the end.
func restartBeside(ctx context.Context, l Layout, s *hostproto.Spec, id string, running []string, log io.Writer) error {
	twin := id + twinSuffix
	mainPort := l.heldPort(id, s.Port)
	twinPort := s.Port
	if mainPort == s.Port {
		twinPort = s.Port + 1
	}
	var olds []string
	for _, r := range running {
		if r == id {
			continue
		}
		if r != twin && l.heldPort(r, s.Port) == twinPort {
			// The port the twin needs is held: restart in place, as
			// before hoist started releases beside themselves.
			fmt.Fprintf(log, "warning: restarting release %s in place: release %s holds port %d; requests to %s fail until it is up again\n", id, r, twinPort, id)
			return restartInPlace(ctx, l, s, id, mainPort, log)
		}
		olds = append(olds, r)
	}
	if err := l.startTwin(ctx, s, id, twinPort, running, log); err != nil {
		return err
	}
	pc := &proxy.Client{Socket: ProxySocket}
	if err := setRoute(ctx, l, s, twinPort); err != nil {
		l.stopTwin(ctx, id, log)
		return fmt.Errorf("switch the proxy to the twin of %s: %w", id, err)
	}
	drain(ctx, pc, s, "release "+id, mainPort, log)
	if err := restartInPlace(ctx, l, s, id, mainPort, log); err != nil {
		// The twin serves: the next deploy or restart starts the
		// release beside it and stops it.
		return fmt.Errorf("%w (its twin %s serves meanwhile)", err, twin)
	}
	if err := setRoute(ctx, l, s, mainPort); err != nil {
		return fmt.Errorf("switch the proxy back to %s: %w (its twin %s serves meanwhile)", id, err, twin)
	}
	drain(ctx, pc, s, "the twin of "+id, twinPort, log)
	l.stopTwin(ctx, id, log)
	for _, old := range olds {
		if old == twin {
			continue
		}
		drain(ctx, pc, s, "release "+old, l.heldPort(old, s.Port), log)
		if err := stopRelease(ctx, l, old, log); err != nil {
			fmt.Fprintf(log, "warning: %v\n", err)
		}
	}
	fmt.Fprintf(log, "release %s restarted with its current environment\n", id)
	return nil
}

// startTwin starts release id's twin on port and waits for it to be
// healthy; a twin left running by a restart cut short is used as it is.
func (l Layout) startTwin(ctx context.Context, s *hostproto.Spec, id string, port int, running []string, log io.Writer) error {
	twin := id + twinSuffix
	unit := systemd.InstanceName(l.App, twin)
	if !slices.Contains(running, twin) {
		os.Remove(l.Release(twin))
		if err := os.Symlink(id, l.Release(twin)); err != nil {
			return fmt.Errorf("twin of %s: %w", id, err)
		}
		if err := claimPort(ctx, port); err != nil {
			os.Remove(l.Release(twin))
			return err
		}
		if err := l.writeTwinPorts(id, port, s.ErlangNetwork); err != nil {
			l.removeTwin(id)
			return err
		}
		fmt.Fprintf(log, "starting a twin of release %s on port %d, to serve while it restarts\n", id, port)
		_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
		if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
			l.stopTwin(ctx, id, log)
			return fmt.Errorf("start the twin of %s: %w", id, err)
		}
	}
	if reason := waitHealthy(ctx, unit, port, s, log); reason != "" {
		he := &hostproto.HealthError{ID: id, Reason: "with its new environment: " + reason, Journal: systemd.JournalTail(ctx, unit, journalLines)}
		l.stopTwin(ctx, id, log)
		return he
	}
	return nil
}

// writeTwinPorts is the twin's port file: its own port (and epmd), and
// the release's own id, which the unit would give as the twin's.
func (l Layout) writeTwinPorts(id string, port int, network string) error {
	twin := id + twinSuffix
	if _, err := l.newPorts(twin, port, network); err != nil {
		return err
	}
	b, err := os.ReadFile(l.portFile(twin))
	if err != nil {
		return fmt.Errorf("write ports of %s: %w", twin, err)
	}
	return writeFileAtomic(l.portFile(twin), append(b, []byte("HOIST_RELEASE="+id+"\n")...), 0o644)
}

// stopTwin stops release id's twin and removes what it had.
func (l Layout) stopTwin(ctx context.Context, id string, log io.Writer) {
	unit := systemd.InstanceName(l.App, id+twinSuffix)
	if _, err := systemd.Systemctl(ctx, "stop", unit); err != nil {
		fmt.Fprintf(log, "warning: stop the twin of %s: %v\n", id, err)
	}
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	l.removeTwin(id)
}

func (l Layout) removeTwin(id string) {
	os.Remove(l.Release(id + twinSuffix))
	os.Remove(l.portFile(id + twinSuffix))
}

// restartInPlace restarts release id on port and waits for it.
func restartInPlace(ctx context.Context, l Layout, s *hostproto.Spec, id string, port int, log io.Writer) error {
	unit := systemd.InstanceName(l.App, id)
	// Written anew, so that it is newer than the environment it starts with.
	if _, err := l.newPorts(id, port, s.ErlangNetwork); err != nil {
		return err
	}
	fmt.Fprintf(log, "restarting release %s on port %d\n", id, port)
	_, _ = systemd.Systemctl(ctx, "reset-failed", unit)
	if _, err := systemd.Systemctl(ctx, "restart", unit); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	if reason := waitHealthy(ctx, unit, port, s, log); reason != "" {
		return &hostproto.HealthError{ID: id, Reason: reason, Journal: systemd.JournalTail(ctx, unit, journalLines)}
	}
	return nil
}

// setRoute points the app's route on the proxy at port.
func setRoute(ctx context.Context, l Layout, s *hostproto.Spec, port int) error {
	maint, err := l.maintenance()
	if err != nil {
		return err
	}
	_, err = (&proxy.Client{Socket: ProxySocket}).SetRoute(ctx, hostproto.Route{
		App: l.App, Hosts: s.ProxyHosts, PathPrefix: s.PathPrefix, Upstream: "127.0.0.1:" + strconv.Itoa(port),
		HealthPath: s.HealthPath, HealthTimeout: hostproto.Duration{Duration: s.HealthTimeout},
		DrainTimeout: hostproto.Duration{Duration: s.DrainTimeout}, TLS: s.TLS, HSTS: s.HSTS,
		MaxBodyBytes: s.MaxBodyBytes, Pages: s.ErrorPages, Maintenance: maint,
	})
	return err
}

// drain waits for the requests the proxy sent to what (on port) to
// finish.
func drain(ctx context.Context, pc *proxy.Client, s *hostproto.Spec, what string, port int, log io.Writer) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	fmt.Fprintf(log, "waiting for the requests to %s to finish, for up to %s\n", what, s.DrainTimeout)
	dctx, cancel := context.WithTimeout(ctx, s.DrainTimeout+10*time.Second)
	defer cancel()
	if err := pc.WaitDrained(dctx, addr, s.DrainTimeout+5*time.Second); err != nil {
		fmt.Fprintf(log, "warning: %v\n", err)
	}
}
