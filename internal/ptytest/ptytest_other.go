//go:build !linux

package ptytest

import (
	"errors"
	"os"
)

var errLinux = errors.New("ptytest: pseudo-terminals for tests are opened on Linux only")

func Open() (ptm, pts *os.File, err error)             { return nil, nil, errLinux }
func SetSize(f *os.File, width, height int) error      { return errLinux }
func SetModes(f *os.File, echoAndEditing bool) error   { return errLinux }
func Modes(f *os.File) (echo, editing bool, err error) { return false, false, errLinux }
