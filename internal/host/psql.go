package host

import (
	"context"
	"errors"
	"os"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// accessoryPsqlVerb runs psql as the app's role (accessory.Psql).
var accessoryPsqlVerb = streamVerb[hostproto.AccessoryPsqlArgs]{hostproto.AccessoryPsqlVerb, func(ctx context.Context, c *call, a hostproto.AccessoryPsqlArgs) (int, error) {
	s, p, err := c.layout.loadAccessory(a.Name)
	if err != nil {
		return 0, err
	}
	if !a.Terminal {
		return accessory.Psql(ctx, s, p, c.layout.User(), a.Args, "", c.stdin, c.stdout, c.stderr)
	}
	if c.terminal == nil {
		return 0, errors.New("psql on a terminal: hoist host was not called on one")
	}
	if err := cookTerminal(c.terminal); err != nil {
		return 0, err
	}
	// ^C reaches psql on the terminal, which cancels its query; hoist
	// waits for psql to end.
	return accessory.Psql(context.WithoutCancel(ctx), s, p, c.layout.User(), a.Args, os.Getenv("TERM"), c.terminal, c.terminal, c.terminal)
}}
