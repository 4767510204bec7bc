//go:build !linux

package fastloop

// pollRDHUP is none elsewhere: left() sees POLLHUP and POLLERR only. The
// proxy runs on Linux hosts; this keeps the package building for the
// operator's side on macOS.
const pollRDHUP = 0
