package deploy

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
)

// HostStatus is what one host serves, as it says; Err when it could not
// be asked.
type HostStatus struct {
	Host   string
	Status *hostproto.Status
	Err    error
}

// Status asks each of the app's hosts what it serves, in the hosts'
// order.
func Status(ctx context.Context, a *App) []HostStatus {
	sts, results := fleet.Map(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) (*hostproto.Status, error) {
		return a.Client(conn).Status(ctx)
	})
	out := make([]HostStatus, len(results))
	for i, r := range results {
		out[i] = HostStatus{Host: r.Host, Err: r.Err}
		if r.Err == nil {
			out[i].Status = sts[i]
		}
	}
	return out
}

// ExecOptions says what Exec runs, and where its output goes.
type ExecOptions struct {
	Argv           []string
	Stdout, Stderr io.Writer
}

// ExecResult is how a command went on one host: Code is its exit
// status, Err why it did not run (or was cut short).
type ExecResult struct {
	Host string
	Code int
	Err  error
}

// Exec runs o.Argv in the current release of each of the app's hosts,
// as the app's user with its environment. With several hosts each line
// of output is prefixed with its host.
func Exec(ctx context.Context, a *App, o ExecOptions) []ExecResult {
	spec := Spec(a.Config)
	var mu sync.Mutex
	codes := make(map[string]int, len(a.Hosts))
	results := fleet.Each(ctx, a.Hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, h string, conn transport.Conn) error {
		out, errw := o.Stdout, o.Stderr
		if len(a.Hosts) > 1 {
			po := &fleet.PrefixWriter{W: o.Stdout, Prefix: h + " | ", Mu: &mu}
			pe := &fleet.PrefixWriter{W: o.Stderr, Prefix: h + " | ", Mu: &mu}
			defer po.Flush()
			defer pe.Flush()
			out, errw = po, pe
		}
		err := a.Client(conn).Exec(ctx, spec, o.Argv, out, errw)
		var ee *transport.ExitError
		if errors.As(err, &ee) {
			mu.Lock()
			codes[h] = ee.Code
			mu.Unlock()
			return nil // the command ran; its status is the result's Code
		}
		return err
	})
	out := make([]ExecResult, len(results))
	for i, r := range results {
		out[i] = ExecResult{Host: r.Host, Code: codes[r.Host], Err: r.Err}
	}
	return out
}
