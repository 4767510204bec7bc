package cli

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

// warnBackups prints, on stderr, a warning for each accessory whose
// last scheduled backup failed or whose newest backup is older than
// twice its schedule's period: setup and deploy call it, so that a
// backup that stopped working is seen. A host it cannot ask is left to
// `hoist accessory status`: the verb that called it succeeded.
func (a *app) warnBackups(ctx context.Context, s *streams) {
	var hosts []string
	for _, n := range a.Config.AccessoryNames() {
		if a.accessorySpec(n).BackupSchedule != "" {
			hosts = append(hosts, a.accessoryHost(n))
		}
	}
	if len(hosts) == 0 {
		return
	}
	hosts = unique(hosts)
	sts, results := fleet.Map(ctx, hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]accessory.Status, error) {
		return a.Client(conn).AccessoryStatus(ctx, "")
	})
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		for _, st := range sts[i] {
			if st.BackupWarning != "" {
				fmt.Fprintf(s.err, "%s: warning: accessory %s: %s (hoist accessory status %s)\n", r.Host, st.Name, st.BackupWarning, st.Name)
			}
		}
	}
}
