// Package build turns a commit into a release directory: it checks the
// commit out into a scratch space, never touching the working copy, and
// runs the configured build there with a Builder, then packs the release
// and keeps it in this machine's artifact cache (release.go, artifact.go),
// where a build of the same source finds it again.
package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Job is one build: a clean checkout and what to run in it.
type Job struct {
	App string
	// Root is the clean checkout's top; Dir the app's directory in it,
	// where the command runs. Builders that build elsewhere take all of
	// Root along, so that build.include's directories are there too.
	Root    string
	Dir     string
	Command string
	Env     map[string]string
	// Output is the release directory, relative to Dir.
	Output string
	// Target is the OS/ARCH the release is for.
	Target string
	// Mounts maps directories of the build environment (absolute caches)
	// to directories on this machine that keep them between builds.
	Mounts map[string]string
	// Log receives hoist's own progress lines about the build.
	Log io.Writer
	// Out receives the build's own output: the command's, and that of the
	// tools that prepare its environment (debootstrap, apt, the container
	// engine). A *Tail keeps only its end, for the error of a failed
	// build. Nil means Log.
	Out io.Writer
}

// env returns the job's environment as KEY=VALUE, sorted, with GOOS and
// GOARCH from the target: Go builds honour them, other toolchains ignore
// them.
func (j Job) env() []string {
	var env []string
	if goos, goarch, ok := strings.Cut(j.Target, "/"); ok {
		env = append(env, "GOOS="+goos, "GOARCH="+goarch)
	}
	keys := make([]string, 0, len(j.Env))
	for k := range j.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+j.Env[k])
	}
	return env
}

// output is where the build's own output goes.
func (j Job) output() io.Writer {
	if j.Out == nil {
		return j.Log
	}
	return j.Out
}

// top is the checkout's top: Root, or Dir when the job has no Root.
func (j Job) top() string {
	if j.Root == "" {
		return j.Dir
	}
	return j.Root
}

// rel is Dir relative to the top, slash-separated ("." at the top).
func (j Job) rel() string {
	r, err := filepath.Rel(j.top(), j.Dir)
	if err != nil {
		return "."
	}
	return filepath.ToSlash(r)
}

// workDir is where the command runs when Root is mounted at mount.
func (j Job) workDir(mount string) string { return path.Join(mount, j.rel()) }

// Builder runs a build job. Builders differ in where the command runs
// (this machine, a root tree, a container, a build host); all of them
// leave the release in Job.Dir/Job.Output.
type Builder interface {
	Name() string
	// Identity says what the build environment is, so that caches made
	// in one are not used in another.
	Identity() string
	Build(ctx context.Context, job Job) error
}

// Deps are what some builders need from the rest of hoist.
type Deps struct {
	// CacheDir holds root trees and build caches on this machine.
	CacheDir string
	// Dial reaches a build host (remote builder).
	Dial func(ctx context.Context, host string) (transport.Conn, error)
}

// New returns the builder hoist.yml names.
func New(b config.Build, d Deps) (Builder, error) {
	r, ok := registrationOf(b)
	if !ok {
		return nil, usererr.New("unknown builder %q", b.Builder).WithHint("use %s", strings.Join(Names(), ", "))
	}
	return r.New(b, d)
}

// CheckOutput refuses a build that left no release, before anything is
// uploaded.
func CheckOutput(job Job) (string, error) {
	out := filepath.Join(job.Dir, job.Output)
	fi, err := os.Stat(out)
	if err != nil || !fi.IsDir() {
		return "", usererr.New("the build left no %s directory", job.Output).
			WithHint("build.command must write the release into build.output (%s), relative to the app's directory (where hoist.yml is)", job.Output)
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
