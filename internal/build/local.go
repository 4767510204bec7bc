package build

import (
	"context"
	"os"
	"os/exec"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Local runs the build command on this machine, in the scratch checkout.
// It suits a Go or Rust service cross-compiled for the target; a release
// that bundles its runtime (Elixir) needs a builder that matches the
// target instead.
type Local struct{}

func (Local) Name() string     { return "local" }
func (Local) Identity() string { return "local" }

func (Local) Build(ctx context.Context, job Job) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", job.Command)
	cmd.Dir = job.Dir
	cmd.Env = append(os.Environ(), job.env()...)
	cmd.Stdout, cmd.Stderr = job.output(), job.output()
	return commandError(ctx, job, cmd.Run())
}

// commandError turns the build command's failure into a user error.
func commandError(ctx context.Context, job Job, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return outputError(job, usererr.Wrap(err, "build command failed (%s)", job.Command))
}

// outputError adds to a failed build's error where its output is: the
// last lines kept, or above on the terminal.
func outputError(job Job, e *usererr.Error) *usererr.Error {
	if t, ok := job.Out.(*Tail); ok {
		if last := t.String(); last != "" {
			return e.WithHint("its last lines:\n%s\n(--verbose shows all of a build's output)", indent(last))
		}
		return e.WithHint("it printed nothing")
	}
	return e.WithHint("its output is above; run it in a clean checkout to reproduce")
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
