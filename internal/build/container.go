package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Container builds in a podman or docker container: the engine is used
// only to build, never at run time. Engine settings (runtime, cgroup
// manager, registries) come from the engine's own configuration.
type Container struct {
	Image      string
	Dockerfile string // relative to the checkout; built into an image first
}

func (c *Container) Name() string { return "container" }

func (c *Container) Identity() string {
	if c.Image != "" {
		return "container " + c.Image
	}
	return "container dockerfile " + c.Dockerfile
}

// Engine returns podman or docker, whichever is installed, podman first.
func Engine() (string, error) {
	for _, e := range []string{"podman", "docker"} {
		if p, err := exec.LookPath(e); err == nil {
			return p, nil
		}
	}
	return "", usererr.New("the container builder needs podman or docker").
		WithHint("install one (apt-get install podman), or use builder: rootfs, which needs neither")
}

// platformFlag asks the engine for an image of target when the engine
// would not pick it by itself: its machine (this one, or the Linux VM
// of Docker Desktop, OrbStack, colima or podman machine on a Mac) is of
// another architecture, as an Apple Silicon Mac building for amd64
// hosts is. The engine then runs the image under emulation.
func platformFlag(target string) []string {
	if target == "" || target == "linux/"+runtime.GOARCH {
		return nil
	}
	return []string{"--platform", target}
}

func (c *Container) Build(ctx context.Context, job Job) error {
	engine, err := Engine()
	if err != nil {
		return err
	}
	image := c.Image
	if c.Dockerfile != "" {
		df := filepath.Join(job.Dir, c.Dockerfile)
		b, err := os.ReadFile(df)
		if err != nil {
			return usererr.Wrap(err, "cannot read build.dockerfile")
		}
		sum := sha256.Sum256(b)
		image = "localhost/hoist-build-" + job.App + ":" + hex.EncodeToString(sum[:])[:12]
		fmt.Fprintf(job.Log, "building the build image %s from %s\n", image, c.Dockerfile)
		cmd := exec.CommandContext(ctx, engine, append(append([]string{"build"}, platformFlag(job.Target)...), "-t", image, "-f", df, filepath.Dir(df))...)
		cmd.Stdout, cmd.Stderr = job.output(), job.output()
		if err := cmd.Run(); err != nil {
			return outputError(job, usererr.Wrap(err, "building the image from %s failed", c.Dockerfile))
		}
	}
	args := append([]string{"run", "--rm"}, platformFlag(job.Target)...)
	args = append(args, "--network=host", "-v", job.top()+":/build", "-w", job.workDir("/build"),
		"-e", "HOME=/root", "-e", "LANG=C.UTF-8")
	for inside, host := range job.Mounts {
		args = append(args, "-v", host+":"+inside)
	}
	for _, kv := range job.env() {
		args = append(args, "-e", kv)
	}
	args = append(args, image, "/bin/sh", "-c", job.Command)
	cmd := exec.CommandContext(ctx, engine, args...)
	cmd.Stdout, cmd.Stderr = job.output(), job.output()
	return commandError(ctx, job, cmd.Run())
}
