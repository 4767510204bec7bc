package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/transport"
)

type lockOptions struct {
	hosts []string
}

func newLockCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &lockOptions{}
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Show or release the app's deploy lock on each host",
	}
	cmd.PersistentFlags().StringArrayVar(&o.hosts, "host", nil, "work on this host instead of the config's (repeatable)")
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show who holds the deploy lock on each host",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runLockStatus(cmd.Context(), s, g, o) },
	}, &cobra.Command{
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
	lines, results := fleet.Map(ctx, a.hosts, a.cfg.SSH.Parallel, a.dial, func(ctx context.Context, h string, conn transport.Conn) (string, error) {
		st, err := a.client(conn).Status(ctx)
		if err != nil {
			return "", err
		}
		if st.Lock != nil {
			return fmt.Sprintf("%s: locked by %s since %s (%s)", h, st.Lock.Holder, st.Lock.Since.Local().Format("2006-01-02 15:04:05"), st.Lock.Op), nil
		}
		return h + ": unlocked", nil
	})
	for _, l := range lines {
		if l != "" {
			fmt.Fprintln(s.out, l)
		}
	}
	return report(s.err, results, "lock status")
}

func runLockRelease(ctx context.Context, s *streams, g *globalOptions, o *lockOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	results := fleet.Each(ctx, a.hosts, a.cfg.SSH.Parallel, a.dial, func(ctx context.Context, h string, conn transport.Conn) error {
		if err := a.client(conn).Unlock(ctx, "", true); err != nil {
			return err
		}
		a.logf(s, h, "unlocked")
		return nil
	})
	return report(s.err, results, "lock release")
}
