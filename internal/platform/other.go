//go:build !linux || nolinux

package platform

// Linux reports whether the Linux-only parts of hoist work here.
const Linux = false
