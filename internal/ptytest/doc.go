// Package ptytest opens pseudo-terminals for tests: a program given the
// terminal as its stdin and stdout sees a user's terminal, and the test
// types and reads through the other end.
//
// It is Linux's /dev/ptmx; elsewhere (ptytest_other.go) every call fails,
// so that the tests that use it build for the operator's platforms too.
package ptytest
