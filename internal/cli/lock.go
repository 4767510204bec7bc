package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
)

type lockOptions struct {
	hosts []string
	json  bool
}

func newLockCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &lockOptions{}
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Show or release the app's deploy lock on each host",
	}
	cmd.PersistentFlags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show who holds the deploy lock on each host",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runLockStatus(cmd.Context(), s, g, o) },
	}
	jsonFlag(status, &o.json)
	cmd.AddCommand(status, &cobra.Command{
		Use:   "release",
		Short: "Release the deploy lock whoever holds it (after a deploy died)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runLockRelease(cmd.Context(), s, g, o) },
	})
	return cmd
}

func runLockStatus(ctx context.Context, s *streams, g *globalOptions, o *lockOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	sts, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) (*hostproto.Status, error) {
		return a.Client(conn).Status(ctx)
	})
	if o.json {
		out := make([]hostLockJSON, len(results))
		for i, r := range results {
			out[i] = hostLockJSON{Host: r.Host, Error: errText(r.Err)}
			if sts[i] != nil {
				out[i].Lock = ptrOut(sts[i].Lock, lockOut)
			}
		}
		if err := writeJSON(s, out); err != nil {
			return err
		}
		return report(s.err, results, "lock status")
	}
	for i, r := range results {
		switch st := sts[i]; {
		case st == nil:
		case st.Lock != nil:
			gone := ""
			if deploy.HolderGone(*st.Lock) {
				gone = "; that process no longer runs on this machine: the next deploy from here takes the lock over, `hoist lock release` clears it"
			}
			fmt.Fprintf(s.out, "%s: locked by %s since %s (%s)%s\n", r.Host, st.Lock.Holder, localTime(st.Lock.Since), st.Lock.Op, gone)
		default:
			fmt.Fprintln(s.out, r.Host+": unlocked")
		}
	}
	return report(s.err, results, "lock status")
}

func runLockRelease(ctx context.Context, s *streams, g *globalOptions, o *lockOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	results := fleet.Each(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) error {
		if err := a.Client(conn).Unlock(ctx, "", true); err != nil {
			return err
		}
		a.Logf(s.err, h, "unlocked")
		return nil
	})
	return report(s.err, results, "lock release")
}
