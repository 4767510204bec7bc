package deploy

import (
	"context"
	"fmt"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

// Restart starts the current release of every host again, with the
// environment as it is now: run.env, the secrets (sent first, as a
// deploy does) and the accessories' URLs. It holds the deploy lock.
// Behind the proxy no request fails and the hosts restart together;
// without it they restart one at a time. ids[i] is the release that
// restarted on hosts[i].
func Restart(ctx context.Context, o ShipOptions) (ids []string, results []fleet.Result) {
	spec := Spec(o.Config)
	members, unlock, refused, _ := o.lockAll(ctx, Holder("restart"))
	defer unlock()
	if refused != nil {
		return make([]string, len(members)), refused
	}
	parallel := o.Config.SSH.Parallel
	if !spec.Proxied() {
		parallel = 1
	}
	return fleet.MapMembers(ctx, members, parallel, func(ctx context.Context, h string, conn transport.Conn) (string, error) {
		c := o.clientOf(conn)
		if o.SendEnv {
			if err := c.SetEnv(ctx, o.Env); err != nil {
				return "", fmt.Errorf("send secrets: %w", err)
			}
		}
		log := &fleet.PrefixWriter{W: o.Log, Prefix: h + ": ", Mu: o.LogMu}
		defer log.Flush()
		return c.Restart(ctx, spec, log)
	})
}
