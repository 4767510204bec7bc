//go:build !linux

package host

import (
	"os"

	"github.com/hoistdev/hoist/internal/platform"
)

// cookTerminal: the host side runs on Linux (Main refuses elsewhere).
func cookTerminal(*os.File) error { return platform.Check(platform.HostRole) }
