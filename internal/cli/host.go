package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/systemd"
)

// The host verbs are what the client runs over SSH; they are hidden from
// help because people do not type them. Each answers with one JSON
// host.Response on stdout and keeps stderr for progress.

type hostOptions struct {
	app string
}

func newHostCmd(s *streams) *cobra.Command {
	o := &hostOptions{}
	cmd := &cobra.Command{
		Use:    "host",
		Short:  "Commands hoist runs on a host over SSH",
		Hidden: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if !host.ValidApp(o.app) {
				return usage("--app %q is not a valid app name", o.app)
			}
			return nil
		},
	}
	cmd.PersistentFlags().StringVar(&o.app, "app", "", "app name")
	layout := func() host.Layout { return host.For("", o.app) }

	// answer runs fn and writes its result or error as a host.Response. The
	// command itself fails too, so that a shell sees the exit status.
	answer := func(fn func(ctx context.Context) (any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			v, err := fn(cmd.Context())
			if err != nil {
				_ = host.WriteError(s.out, err)
				return &ExitError{Code: 1}
			}
			return host.WriteResult(s.out, v)
		}
	}
	readSpec := func() (*host.Spec, error) {
		b, err := io.ReadAll(io.LimitReader(s.in, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("read spec: %w", err)
		}
		return host.DecodeSpec(b)
	}
	var manifestArg string
	manifest := func() (*release.Manifest, error) {
		b, err := base64.RawURLEncoding.DecodeString(manifestArg)
		if err != nil {
			return nil, fmt.Errorf("decode --manifest: %w", err)
		}
		return release.ParseManifest(b)
	}

	setup := &cobra.Command{Use: "setup", Args: cobra.NoArgs, RunE: answer(func(ctx context.Context) (any, error) {
		spec, err := readSpec()
		if err != nil {
			return nil, err
		}
		return host.Setup(ctx, layout(), spec)
	})}

	uploadState := &cobra.Command{Use: "upload-state", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		m, err := manifest()
		if err != nil {
			return nil, err
		}
		return host.Upload(layout(), m)
	})}
	uploadState.Flags().StringVar(&manifestArg, "manifest", "", "release manifest, base64 JSON")

	var offset int64
	receive := &cobra.Command{Use: "receive", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		m, err := manifest()
		if err != nil {
			return nil, err
		}
		return nil, host.Receive(layout(), m, offset, s.in)
	})}
	receive.Flags().StringVar(&manifestArg, "manifest", "", "release manifest, base64 JSON")
	receive.Flags().Int64Var(&offset, "offset", 0, "resume at this byte")

	env := &cobra.Command{Use: "env", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		b, err := io.ReadAll(io.LimitReader(s.in, 4<<20))
		if err != nil {
			return nil, fmt.Errorf("read env: %w", err)
		}
		return host.SetEnv(layout(), b)
	})}

	var holder, op string
	var force bool
	lock := &cobra.Command{Use: "lock", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		return nil, host.AcquireLock(layout(), host.Lock{Holder: holder, Op: op, Since: nowUTC()})
	})}
	lock.Flags().StringVar(&holder, "holder", "", "who takes the lock")
	lock.Flags().StringVar(&op, "op", "", "what for")
	unlock := &cobra.Command{Use: "unlock", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		return nil, host.ReleaseLock(layout(), holder, force)
	})}
	unlock.Flags().StringVar(&holder, "holder", "", "who releases the lock")
	unlock.Flags().BoolVar(&force, "force", false, "release whoever holds it")

	var id string
	activate := &cobra.Command{Use: "activate", Args: cobra.NoArgs, RunE: answer(func(ctx context.Context) (any, error) {
		spec, err := readSpec()
		if err != nil {
			return nil, err
		}
		if !release.ValidID(id) {
			return nil, fmt.Errorf("invalid release id %q", id)
		}
		return nil, host.Activate(ctx, layout(), spec, id, s.err)
	})}
	activate.Flags().StringVar(&id, "id", "", "release to activate")

	status := &cobra.Command{Use: "status", Args: cobra.NoArgs, RunE: answer(func(ctx context.Context) (any, error) {
		return host.ReadStatus(ctx, layout())
	})}
	releases := &cobra.Command{Use: "releases", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		return host.ListReleases(layout())
	})}
	previous := &cobra.Command{Use: "previous", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		return host.PreviousID(layout())
	})}
	proxyStatus := &cobra.Command{Use: "proxy-status", Args: cobra.NoArgs, RunE: answer(func(ctx context.Context) (any, error) {
		return (&proxy.Client{Socket: host.ProxySocket}).Status(ctx)
	})}
	proxyRoot := &cobra.Command{Use: "proxy-root", Args: cobra.NoArgs, RunE: answer(func(context.Context) (any, error) {
		return host.ProxyRoot()
	})}
	boot := &cobra.Command{Use: "boot", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		return host.Boot(cmd.Context(), layout())
	}}

	var specArg string
	execCmd := &cobra.Command{Use: "exec -- CMD...", Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		b, err := base64.RawURLEncoding.DecodeString(specArg)
		if err != nil {
			return fmt.Errorf("decode --spec: %w", err)
		}
		spec, err := host.DecodeSpec(b)
		if err != nil {
			return err
		}
		code, err := host.Exec(cmd.Context(), layout(), spec, args, s.in, s.out, s.err)
		if err != nil {
			return err
		}
		if code != 0 {
			return &ExitError{Code: code}
		}
		return nil
	}}
	execCmd.Flags().StringVar(&specArg, "spec", "", "app spec, base64 JSON")

	var lines int
	var follow bool
	logs := &cobra.Command{Use: "logs", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		args := []string{"--unit", systemd.InstancePattern(o.app), "--lines", strconv.Itoa(lines), "--no-pager", "--output", "short-iso", "--quiet"}
		if follow {
			args = append(args, "--follow")
		}
		c := exec.CommandContext(cmd.Context(), "journalctl", args...)
		c.Stdout, c.Stderr = s.out, s.err
		return c.Run()
	}}
	logs.Flags().IntVarP(&lines, "lines", "n", 50, "lines")
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "follow")

	cmd.AddCommand(setup, uploadState, receive, env, proxyStatus, proxyRoot, lock, unlock, activate, status, releases, previous, boot, execCmd, logs)
	return cmd
}

func nowUTC() time.Time { return time.Now().UTC().Truncate(time.Second) }
