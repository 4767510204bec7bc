package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
)

type auditOptions struct {
	hosts []string
	lines int
	json  bool
}

func newAuditCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show who deployed, rolled back, set up, changed secrets or switched maintenance, merged across hosts",
		Long: "Each host keeps an audit trail of the app (docs/json.md describes its\n" +
			"lines): every deploy, rollback, setup, change of secrets, maintenance\n" +
			"switch and restore, with who (git identity and login), when, which\n" +
			"release and how it ended. audit merges the hosts' trails by time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.lines < 0 {
				return usage("-n must be 0 or more")
			}
			return runAudit(cmd.Context(), s, g, o)
		},
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "read this host instead of the config's (repeatable)")
	cmd.Flags().IntVarP(&o.lines, "lines", "n", 50, "newest lines per host (0: all)")
	jsonFlag(cmd, &o.json)
	return cmd
}

// auditLine is one line of `hoist audit`: a host's entry.
type auditLine struct {
	Host string `json:"host"`
	hostproto.AuditEntry
}

func runAudit(ctx context.Context, s *streams, g *globalOptions, o *auditOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	hosts := a.Hosts
	if len(o.hosts) == 0 {
		hosts = a.SetupHosts() // the accessories' hosts keep restores
	}
	entries, results := fleet.Map(ctx, hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.AuditEntry, error) {
		return a.Client(conn).Audit(ctx, o.lines)
	})
	out := []auditLine{}
	for i, r := range results {
		for _, e := range entries[i] {
			out = append(out, auditLine{Host: r.Host, AuditEntry: e})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if o.json {
		if err := writeJSON(s, sliceOut(out, auditLineOut)); err != nil {
			return err
		}
		return report(s.err, results, "audit")
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "TIME\tHOST\tWHO\tSSH LOGIN\tOP\tRELEASE\tOUTCOME\tDETAIL")
	for _, l := range out {
		outcome := l.Outcome
		if l.Error != "" {
			outcome += ": " + firstLine(l.Error, 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", localTime(l.Time), l.Host, who(l.Who), sshLogin(l.SSH),
			l.Op, dash(l.Release), outcome, dash(l.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return report(s.err, results, "audit")
}

// who names an actor for people: git name and email, and the login.
func who(a hostproto.Actor) string {
	var parts []string
	if a.Name != "" {
		parts = append(parts, a.Name)
	}
	if a.Email != "" {
		parts = append(parts, "<"+a.Email+">")
	}
	if a.Login != "" {
		parts = append(parts, "("+a.Login+")")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// sshLogin names the login the host saw: its user and key (or method).
func sshLogin(l *hostproto.SSHLogin) string {
	switch {
	case l == nil:
		return "-"
	case l.Key != "":
		return l.User + " " + l.Key
	}
	return l.User + " (" + l.Method + ")"
}

// firstLine is s's first line, at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}
