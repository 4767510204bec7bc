package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
)

type statusOptions struct {
	hosts []string
	json  bool
}

func newStatusCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the app's service state, release and since when, per host",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStatus(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringArrayVar(&o.hosts, "host", nil, "ask this host instead of the config's (repeatable)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// hostStatus is one host's line of `hoist status`.
type hostStatus struct {
	Host   string            `json:"host"`
	Status *hostproto.Status `json:"status,omitempty"`
	Error  string            `json:"error,omitempty"`
}

func runStatus(ctx context.Context, s *streams, g *globalOptions, o *statusOptions) error {
	a, err := loadApp(g, s, o.hosts)
	if err != nil {
		return err
	}
	sts := deploy.Status(ctx, a.App)
	out := make([]hostStatus, len(sts))
	results := make([]fleet.Result, len(sts))
	for i, st := range sts {
		out[i] = hostStatus{Host: st.Host, Status: st.Status, Error: errText(st.Err)}
		results[i] = fleet.Result{Host: st.Host, Err: st.Err}
	}
	if o.json {
		return writeJSON(s, sliceOut(out, hostStatusOut))
	}
	tw := table(s.out)
	fmt.Fprintln(tw, "HOST\tSTATE\tRELEASE\tSINCE\tLOCK")
	for _, hs := range out {
		if hs.Status == nil {
			fmt.Fprintf(tw, "%s\tunreachable\t-\t-\t%s\n", hs.Host, hs.Error)
			continue
		}
		st := hs.Status
		rel, since, lock := dash(st.Current), "-", "-"
		if !st.Since.IsZero() {
			since = localTime(st.Since) + " (" + time.Since(st.Since).Round(time.Second).String() + " ago)"
		}
		if st.Lock != nil {
			lock = st.Lock.Holder
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", hs.Host, st.State, rel, since, lock)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printSchedule(s.out, out)
	return report(s.err, results, "status")
}

// printSchedule writes the hosts' scheduled tasks, one line each: when
// each ran last and how it went, when it runs next.
func printSchedule(w io.Writer, out []hostStatus) {
	var rows [][]string
	var failures []string
	for _, hs := range out {
		if hs.Status == nil {
			continue
		}
		for _, t := range hs.Status.Schedule {
			last, result, next := "never", "-", "-"
			if r := t.Last; r != nil {
				last = localTime(r.Started)
				result = fmt.Sprintf("ok (%s)", howLong(time.Duration(r.Seconds*float64(time.Second))))
				if !r.OK {
					result = fmt.Sprintf("FAILED (exit status %d)", r.ExitStatus)
					failures = append(failures, fmt.Sprintf("%s: task %s failed at %s: %s", hs.Host, t.Name, localTime(r.Started), r.Error))
				}
			}
			if t.Running {
				result = "running now"
			}
			if !t.Next.IsZero() {
				next = localTime(t.Next)
			}
			rows = append(rows, []string{hs.Host, t.Name, t.Calendar, last, result, next})
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := table(w)
	fmt.Fprintln(tw, "HOST\tTASK\tCALENDAR\tLAST RUN\tRESULT\tNEXT RUN")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, f := range failures {
		fmt.Fprintln(w, f)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errText is err's message, "" for none: the error field of --json.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// table lays out what a verb prints for people in aligned columns.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// localTime is how a verb prints a moment for people: local, to the second.
func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func writeJSON(s *streams, v any) error {
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
