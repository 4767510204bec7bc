package build

import (
	"context"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Local runs the build command on this machine, in the scratch checkout.
// It suits a Go or Rust service cross-compiled for the target; a release
// that bundles its runtime (Elixir) needs a builder that matches the
// target instead.
type Local struct{}

func (Local) Name() string { return "local" }

func (Local) Build(ctx context.Context, job Job) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", job.Command)
	cmd.Dir = job.Dir
	cmd.Env = os.Environ()
	if goos, goarch, ok := strings.Cut(job.Target, "/"); ok {
		// Go builds honour these; other toolchains ignore them.
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch)
	}
	keys := make([]string, 0, len(job.Env))
	for k := range job.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+job.Env[k])
	}
	cmd.Stdout, cmd.Stderr = job.Log, job.Log
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return usererr.Wrap(err, "build command failed (%s)", job.Command).
			WithHint("its output is above; run it in a clean checkout to reproduce")
	}
	return nil
}
