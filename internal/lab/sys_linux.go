//go:build linux && !nolinux

package lab

import (
	"os"
	"syscall"
)

// The lab's calls that exist on Linux alone; sys_other.go has their
// stubs, never reached: Preflight and defaults refuse first.

// mountOverlayFS mounts an overlay with opts on root.
func mountOverlayFS(root, opts string) error {
	return syscall.Mount("overlay", root, "overlay", 0, opts)
}

// unmountDetached unmounts p lazily, once it is no longer busy.
func unmountDetached(p string) { syscall.Unmount(p, syscall.MNT_DETACH) }

// inCgroup starts a process in the cgroup open as dir.
func inCgroup(dir *os.File) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
}
