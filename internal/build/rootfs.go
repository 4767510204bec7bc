package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hoistdev/hoist/internal/platform"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Rootfs builds in a cached root tree of the target distribution, made
// with debootstrap and entered with systemd-nspawn. No container engine
// is needed, and the release links against the target's own libraries.
type Rootfs struct {
	Distro   string // debian/bookworm
	Packages []string
	CacheDir string // where root trees are cached
	// Mirror overrides the distribution's default mirror.
	Mirror string
}

func (r *Rootfs) Name() string { return "rootfs" }

func (r *Rootfs) Identity() string {
	return "rootfs " + r.Distro + " " + strings.Join(r.sortedPackages(), ",")
}

func (r *Rootfs) sortedPackages() []string {
	p := append([]string{}, r.Packages...)
	sort.Strings(p)
	return p
}

// Tree returns the cached root tree, building it when missing.
// log gets hoist's progress lines, out the tools' own output.
func (r *Rootfs) Tree(ctx context.Context, log, out io.Writer) (string, error) {
	if err := platform.Check(platform.RootfsBuilder); err != nil {
		return "", err
	}
	if os.Geteuid() != 0 {
		return "", usererr.New("the rootfs builder needs root: it makes and enters root trees").
			WithHint("run hoist as root, or use builder: container or remote")
	}
	for _, bin := range []string{"debootstrap", "systemd-nspawn"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", usererr.New("the rootfs builder needs %s", bin).
				WithHint("install it: apt-get install debootstrap systemd-container")
		}
	}
	name, suite, _ := strings.Cut(r.Distro, "/")
	sum := sha256.Sum256([]byte(r.Identity()))
	tree := filepath.Join(r.CacheDir, name+"-"+suite+"-"+hex.EncodeToString(sum[:])[:12])
	if _, err := os.Stat(filepath.Join(tree, "etc", "os-release")); err == nil {
		return tree, nil
	}
	if err := os.MkdirAll(r.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	tmp, err := os.MkdirTemp(r.CacheDir, filepath.Base(tree)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	defer os.RemoveAll(tmp)
	mirror := r.Mirror
	if mirror == "" {
		mirror = map[string]string{"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}[name]
	}
	fmt.Fprintf(log, "making the %s root tree with debootstrap (once per package list)\n", r.Distro)
	boot, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include=ca-certificates", suite, tmp, mirror).CombinedOutput()
	if err != nil {
		return "", usererr.Wrap(err, "debootstrap %s failed", r.Distro).WithHint("its last lines:\n%s", lastLines(string(boot), 8))
	}
	if len(r.Packages) > 0 {
		fmt.Fprintf(log, "installing %s in the root tree\n", strings.Join(r.Packages, " "))
		script := "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " +
			strings.Join(r.Packages, " ") + " >/dev/null && apt-get clean"
		cmd := exec.CommandContext(ctx, "systemd-nspawn", "-q", "-D", tmp, "--register=no", "--keep-unit", "--as-pid2", "/bin/sh", "-c", script)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return "", usererr.Wrap(err, "installing build.packages in the %s tree failed", r.Distro).
				WithHint("check the package names for %s", r.Distro)
		}
	}
	if err := os.Rename(tmp, tree); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	return tree, nil
}

// Build runs the command in a throwaway overlay of the tree, with the
// checkout at /build (the app's directory in it as the working
// directory) and the absolute caches mounted.
func (r *Rootfs) Build(ctx context.Context, job Job) error {
	tree, err := r.Tree(ctx, job.Log, job.output())
	if err != nil {
		return err
	}
	scratch, err := os.MkdirTemp(filepath.Dir(job.top()), "rootfs-")
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer os.RemoveAll(scratch)
	merged := filepath.Join(scratch, "root")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(scratch, d), 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	opts := "lowerdir=" + tree + ",upperdir=" + filepath.Join(scratch, "upper") + ",workdir=" + filepath.Join(scratch, "work")
	if err := mountOverlay(merged, opts); err != nil {
		return fmt.Errorf("rootfs: mount overlay: %w", err)
	}
	defer unmountDetached(merged)
	machine := "hoist-build-" + filepath.Base(scratch)[len("rootfs-"):]
	args := []string{"-q", "-D", merged, "-M", machine, "--register=no", "--keep-unit", "--as-pid2",
		"--bind=" + job.top() + ":/build", "--chdir=" + job.workDir("/build"), "--setenv=HOME=/root", "--setenv=LANG=C.UTF-8"}
	for inside, host := range job.Mounts {
		args = append(args, "--bind="+host+":"+inside)
	}
	for _, kv := range job.env() {
		args = append(args, "--setenv="+kv)
	}
	args = append(args, "/bin/sh", "-c", job.Command)
	cmd := exec.CommandContext(ctx, "systemd-nspawn", args...)
	cmd.Stdout, cmd.Stderr = job.output(), job.output()
	return commandError(ctx, job, cmd.Run())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
