package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/twin"
)

type labOptions struct {
	name     string
	hosts    int
	json     bool
	packages []string
	uplink   string
	arch     string
}

func newLabCmd(s *streams) *cobra.Command {
	o := &labOptions{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Boot, list and remove local Linux hosts to deploy to (needs root)",
		Long: "lab boots Debian 12 hosts on this machine as systemd-nspawn machines,\n" +
			"each in its own network namespace on a private bridge, with systemd and\n" +
			"OpenSSH. Their host keys are recorded for hoist, and a lab key lets\n" +
			"hoist log in as root.",
	}
	cmd.PersistentFlags().StringVar(&o.name, "name", "lab", "lab name; several labs can run at once")
	up := &cobra.Command{
		Use:   "up",
		Short: "Boot the lab's hosts and print one address per line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.hosts < 1 || o.hosts > 50 {
				return usage("--hosts must be between 1 and 50")
			}
			return runLabUp(cmd.Context(), s, o)
		},
	}
	up.Flags().IntVar(&o.hosts, "hosts", 1, "how many hosts")
	jsonFlag(up, &o.json)
	up.Flags().StringSliceVar(&o.packages, "packages", nil, "Debian packages the hosts can install with apt (downloaded once into a local repository: lab hosts reach no mirror)")
	up.Flags().StringVar(&o.arch, "arch", "", "the hosts' architecture, amd64 or arm64 (default: this machine's); another runs under qemu-user emulation (qemu-user-static)")
	up.Flags().StringVar(&o.uplink, "uplink", "", "limit traffic between this machine and the hosts to this rate, like 20mbit (off: no limit); hosts talk to each other at full speed")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the lab's hosts and whether they run and answer SSH",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runLabStatus(cmd.Context(), s, o) },
	}
	status.Flags().BoolVar(&o.json, "json", false, "print JSON")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the lab's hosts and remove everything the lab made",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return lab.Down(cmd.Context(), labOpts(s, o)) },
	}
	var twinConfig string
	balancer := &cobra.Command{
		Use:    "balancer",
		Short:  "Run the lab's balancer twin (the lab starts it in its own network namespace)",
		Hidden: true,
		Long: "balancer runs the lab's stand-in for an ALB in the foreground until SIGTERM:\n" +
			"HTTPS for the app's names, HTTP redirected, requests forwarded to the\n" +
			"registered hosts' proxies, each health-checked, registrations taken on a\n" +
			"unix socket. `hoist provision` starts it for `balancer: alb` on the lab.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := twin.ReadConfig(twinConfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return twin.Run(ctx, cfg, slog.New(slog.NewJSONHandler(s.err, nil)))
		},
	}
	balancer.Flags().StringVar(&twinConfig, "config", "", "the twin's config file, as the lab writes it")
	cmd.AddCommand(up, status, down, balancer)
	return cmd
}

func labOpts(s *streams, o *labOptions) lab.Options {
	home := hoistHome()
	return lab.Options{
		Name:           o.name,
		KeyPath:        labKeyPath(home),
		KnownHostsPath: filepath.Join(home, "known_hosts"),
		Log:            s.err,
		Packages:       o.packages,
		Arch:           o.arch,
	}
}

func runLabUp(ctx context.Context, s *streams, o *labOptions) error {
	if err := lab.Preflight(); err != nil {
		return err
	}
	hosts, err := lab.Up(ctx, labOpts(s, o), o.hosts)
	if err != nil {
		return err
	}
	if o.uplink != "" {
		rate := o.uplink
		if rate == "off" {
			rate = ""
		}
		if err := lab.ShapeUplink(ctx, labOpts(s, o), rate); err != nil {
			return err
		}
	}
	if o.json {
		return writeJSON(s, sliceOut(hosts, labHostOut))
	}
	for _, h := range hosts {
		fmt.Fprintln(s.out, h.Addr)
	}
	return nil
}

func runLabStatus(ctx context.Context, s *streams, o *labOptions) error {
	st, err := lab.Status(ctx, labOpts(s, o))
	if err != nil {
		return err
	}
	if o.json {
		rows := make([]labStatusJSON, 0, len(st))
		for _, h := range st {
			rows = append(rows, labStatusJSON{h.Name, h.Addr, h.Running, h.SSH})
		}
		return writeJSON(s, rows)
	}
	if len(st) == 0 {
		fmt.Fprintf(s.err, "lab %q has no hosts; `hoist lab up` boots some\n", o.name)
		return nil
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "NAME\tADDRESS\tRUNNING\tSSH")
	for _, h := range st {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, h.Addr, yesNo(h.Running), yesNo(h.SSH))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
