package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// basePackages are what a lab host needs beyond minbase: systemd as init,
// sshd, and the tools hoist's host role calls.
const basePackages = "systemd,systemd-sysv,openssh-server,dbus,iproute2,ca-certificates"

// ensureBase returns the cached base tree for o.Suite, making it with
// debootstrap when missing. It is built beside its final name and renamed
// when complete, so a killed run never leaves a half tree as the cache.
func ensureBase(ctx context.Context, o Options) (string, error) {
	base := filepath.Join(o.CacheDir, "base-"+o.Suite)
	if _, err := os.Stat(filepath.Join(base, "usr/lib/systemd/systemd")); err == nil {
		return base, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	tmp, err := os.MkdirTemp(o.CacheDir, "base-"+o.Suite+".tmp-")
	if err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(o.Log, "building the %s base tree with debootstrap (once; about a minute)\n", o.Suite)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+basePackages, o.Suite, tmp, o.Mirror)
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		return "", fmt.Errorf("debootstrap %s: %w:\n%s", o.Suite, err, strings.Join(lines, "\n"))
	}
	if err := os.Rename(tmp, base); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	return base, nil
}

// mountRoot mounts dir/root as an overlay of base with dir/upper on top,
// so each host has its own writable disk at almost no cost.
func mountRoot(ctx context.Context, base, dir string) error {
	root := filepath.Join(dir, "root")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("prepare %s: %w", dir, err)
		}
	}
	if mounted(root) {
		return nil
	}
	opts := "lowerdir=" + base + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := syscall.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay for %s: %w", dir, err)
	}
	return nil
}

func mounted(p string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func umount(p string) {
	for i := 0; i < 3 && mounted(p); i++ {
		if err := syscall.Unmount(p, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
}
