//go:build !linux || nolinux

package build

import "github.com/hoistdev/hoist/internal/platform"

func mountOverlay(string, string) error { return platform.Check(platform.RootfsBuilder) }

func unmountDetached(string) {}
