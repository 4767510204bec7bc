//go:build linux && !nolinux

package build

import "syscall"

// The rootfs builder's calls that exist on Linux alone; rootfs_other.go
// has their stubs, never reached: the builder refuses to start first.

func mountOverlay(merged, opts string) error {
	return syscall.Mount("overlay", merged, "overlay", 0, opts)
}

func unmountDetached(p string) { syscall.Unmount(p, syscall.MNT_DETACH) }
