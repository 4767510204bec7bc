package host

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// cookTerminal turns echo and line editing on.
func cookTerminal(t *os.File) error {
	tio, err := unix.IoctlGetTermios(int(t.Fd()), unix.TCGETS)
	if err != nil {
		return fmt.Errorf("read terminal modes: %w", err)
	}
	tio.Lflag |= unix.ECHO | unix.ICANON
	if err := unix.IoctlSetTermios(int(t.Fd()), unix.TCSETS, tio); err != nil {
		return fmt.Errorf("set terminal modes: %w", err)
	}
	return nil
}
