package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/usererr"
)

// basePackages are what a lab host needs beyond minbase: systemd as init,
// sshd, the tools hoist's host role calls, and sudo for logins that are
// not root, as on a real server.
const basePackages = "systemd,systemd-sysv,openssh-server,dbus,iproute2,ca-certificates,sudo"

// baseReady is a file every complete base tree has; a tree without it is
// not used.
const baseReady = "usr/lib/systemd/systemd"

// ensureBase returns the cached base tree for o.Suite, making it with
// debootstrap when missing. It is named by its package list too, so that
// a changed list makes a new tree. It is built in BASE.partial and renamed
// when complete, so a killed run never leaves a half tree as the cache; a
// lock keeps two labs from building it at once.
func ensureBase(ctx context.Context, o Options) (string, error) {
	sum := sha256.Sum256([]byte(basePackages))
	suite := o.Suite
	if o.foreign() {
		suite += "-" + o.Arch // this machine's tree keeps the name it had
	}
	base := filepath.Join(o.CacheDir, "base-"+suite+"-"+hex.EncodeToString(sum[:4]))
	if exists(filepath.Join(base, baseReady)) {
		return base, nil
	}
	// debootstrap has been seen to take minutes on a slow mirror.
	l, err := filelock.Acquire(ctx, base+".lock", 15*time.Minute)
	if err != nil {
		return "", err
	}
	defer l.Release()
	if exists(filepath.Join(base, baseReady)) {
		return base, nil // another hoist built it while we waited
	}
	if exists(base) {
		// Not ours to delete: it was never renamed into place by us.
		return "", usererr.New("lab cache %s exists but holds no complete %s tree", base, o.Suite).
			WithHint("remove it (rm -rf %s) and run again", base)
	}
	// A .partial now is a killed run's leftover: the lock says no one
	// else is building.
	partial := base + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	// The tree's top is the hosts' "/": services running as other users
	// must be able to traverse it.
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	if err := os.Chmod(partial, 0o755); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	args := []string{"--variant=minbase", "--include=" + basePackages}
	if o.foreign() {
		fmt.Fprintf(o.Log, "building the %s %s base tree with debootstrap under emulation (once; ten minutes or more)\n", o.Suite, o.Arch)
		args = append(args, "--arch="+o.Arch)
	} else {
		fmt.Fprintf(o.Log, "building the %s base tree with debootstrap (once; about a minute)\n", o.Suite)
	}
	cmd := exec.CommandContext(ctx, "debootstrap", append(args, o.Suite, partial, o.Mirror)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(partial)
		return "", fmt.Errorf("debootstrap %s: %w:\n%s", o.Suite, err, lastLines(string(out), 10))
	}
	if err := os.Rename(partial, base); err != nil {
		return "", fmt.Errorf("lab cache: %w", err)
	}
	return base, nil
}

// Files in a machine's directory that say how its root was made.
const (
	copiedMarker   = "copied"   // root is a full copy of the base, not an overlay
	preparedMarker = "prepared" // personalize finished: identity and keys are in place
)

// prepareRoot makes dir/root the machine's tree: an overlay of base with
// dir/upper on top, so each host has its own writable disk at almost no
// cost; where overlayfs is refused, a reflink-or-full copy of base.
func prepareRoot(ctx context.Context, o Options, base, dir string) error {
	root := filepath.Join(dir, "root")
	if exists(filepath.Join(dir, copiedMarker)) || mounted(root) {
		return nil
	}
	if !o.forceCopy {
		err := mountOverlay(base, dir)
		if err == nil {
			return nil
		}
		fmt.Fprintf(o.Log, "overlayfs refused (%v); copying the base tree instead\n", err)
	}
	// A copy a killed run left half done is started again.
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("prepare %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("prepare %s: %w", dir, err)
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", base+"/.", root).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy base tree to %s: %w: %s", root, err, lastLines(string(out), 5))
	}
	return touch(filepath.Join(dir, copiedMarker))
}

func mountOverlay(base, dir string) error {
	root := filepath.Join(dir, "root")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("prepare %s: %w", dir, err)
		}
	}
	opts := "lowerdir=" + base + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := mountOverlayFS(root, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", root, err)
	}
	return nil
}

// mounted reports whether p is a mount point in this mount namespace.
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

// umount unmounts p (all stacked mounts on it), lazily if it is busy, and
// reports an error only if p is still a mount point afterwards.
func umount(p string) error {
	for i := 0; i < 5 && mounted(p); i++ {
		if err := syscall.Unmount(p, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			unmountDetached(p)
		}
	}
	if mounted(p) {
		return fmt.Errorf("unmount %s: still mounted", p)
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func touch(p string) error {
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("mark %s: %w", p, err)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
