// Package build turns a commit into a release directory: it checks the
// commit out into a scratch space, never touching the working copy, and
// runs the configured build there with a Builder.
package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Job is one build: a clean checkout and what to run in it.
type Job struct {
	// Dir is the clean checkout; the command runs at its root.
	Dir     string
	Command string
	Env     map[string]string
	// Output is the release directory, relative to Dir.
	Output string
	// Target is the OS/ARCH the release is for.
	Target string
	// Log receives the build's own output.
	Log io.Writer
}

// Builder runs a build job. Builders differ in where the command runs
// (this machine, a root tree, a container, a build host); all of them
// leave the release in Job.Dir/Job.Output.
type Builder interface {
	Name() string
	Build(ctx context.Context, job Job) error
}

// New returns the builder named in hoist.yml.
func New(name string) (Builder, error) {
	switch name {
	case "local", "":
		return Local{}, nil
	}
	return nil, usererr.New("unknown builder %q", name).WithHint("use builder: local")
}

// CheckOutput refuses a build that left no release, before anything is
// uploaded.
func CheckOutput(job Job) (string, error) {
	out := filepath.Join(job.Dir, job.Output)
	fi, err := os.Stat(out)
	if err != nil || !fi.IsDir() {
		return "", usererr.New("the build left no %s directory", job.Output).
			WithHint("build.command must write the release into build.output (%s), relative to the repository root", job.Output)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return "", fmt.Errorf("read build output: %w", err)
	}
	if len(entries) == 0 {
		return "", usererr.New("the build left %s empty", job.Output).
			WithHint("build.command must write the release into build.output (%s)", job.Output)
	}
	return out, nil
}
