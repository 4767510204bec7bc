package ptytest

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Open returns a new pseudo-terminal: ptm, the test's end, and pts, the
// terminal a program runs on.
func Open() (ptm, pts *os.File, err error) {
	ptm, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd := int(ptm.Fd())
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0)
	}
	if err == nil {
		pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	}
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	return ptm, pts, nil
}

// SetSize sets the terminal's size, as a terminal window does.
func SetSize(f *os.File, width, height int) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(width), Row: uint16(height)})
}

// SetModes turns the terminal's echo and line editing on or off.
func SetModes(f *os.File, echoAndEditing bool) error {
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return err
	}
	if echoAndEditing {
		tio.Lflag |= unix.ECHO | unix.ICANON
	} else {
		tio.Lflag &^= unix.ECHO | unix.ICANON
	}
	return unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, tio)
}

// Modes reports whether the terminal's echo and line editing are on.
func Modes(f *os.File) (echo, editing bool, err error) {
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return false, false, err
	}
	return tio.Lflag&unix.ECHO != 0, tio.Lflag&unix.ICANON != 0, nil
}
