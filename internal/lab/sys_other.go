//go:build !linux || nolinux

package lab

import (
	"os"
	"syscall"

	"github.com/hoistdev/hoist/internal/platform"
)

func mountOverlayFS(string, string) error { return platform.Check(platform.Lab) }

func unmountDetached(string) {}

func inCgroup(*os.File) *syscall.SysProcAttr { return nil }
