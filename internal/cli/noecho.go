package cli

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// readHidden reads a line from the terminal fd with echo off, and only
// then calls prompt: what someone types (or pastes) as soon as the
// question shows is never shown, as it could be if the question came
// first and echo went off after (x/term's ReadPassword does that).
func readHidden(fd int, prompt func()) ([]byte, error) {
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	st := *old
	st.Lflag &^= unix.ECHO
	st.Lflag |= unix.ICANON | unix.ISIG
	st.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &st); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, ioctlSetTermios, old)
	prompt()
	var line []byte
	var b [1]byte
	// One byte at a time, so that nothing after the line is taken from
	// the terminal; a secret is at most 1 MiB, as one from stdin.
	for len(line) < 1<<20 {
		n, err := unix.Read(fd, b[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("terminal: %w", err)
		}
		if n == 0 {
			if len(line) == 0 {
				return nil, io.EOF
			}
			break
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}
