package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy"
)

// Maintenance mode: the host's edge proxy answers every request of the
// app with a 503 page while the app keeps running. The proxy keeps it
// in its state; the app's directory keeps it too (maintenanceFile), so
// that a release deployed during maintenance gets its route with it.

// setMaintenance turns the app's maintenance mode on (m) or off (nil).
// The app must have a route on the host's proxy.
func setMaintenance(ctx context.Context, l Layout, m *hostproto.Maintenance) error {
	pc := &proxy.Client{Socket: ProxySocket}
	routes, err := pc.Routes(ctx)
	if err != nil {
		return fmt.Errorf("the edge proxy on this host does not answer (%v): maintenance needs the app behind it: list its names in proxy.hosts, run hoist setup and deploy", err)
	}
	if !slices.ContainsFunc(routes, func(r hostproto.Route) bool { return r.App == l.App }) {
		return fmt.Errorf("%s has no route on this host's edge proxy: maintenance needs the app behind it: list its names in proxy.hosts, run hoist setup and deploy", l.App)
	}
	if m != nil && m.Since.IsZero() {
		m.Since = time.Now().UTC().Truncate(time.Second)
	}
	if err := pc.SetMaintenance(ctx, l.App, m); err != nil {
		return err
	}
	if m == nil {
		if err := os.Remove(l.maintenanceFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("maintenance: %w", err)
		}
		return nil
	}
	b, _ := json.Marshal(m) // plain struct: cannot fail
	return atomicfile.Write(l.maintenanceFile(), b, 0o644)
}

// maintenance is the app's maintenance mode, nil when it is off.
func (l Layout) maintenance() (*hostproto.Maintenance, error) {
	b, err := os.ReadFile(l.maintenanceFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read maintenance: %w", err)
	}
	var m hostproto.Maintenance
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", l.maintenanceFile(), err)
	}
	return &m, nil
}
