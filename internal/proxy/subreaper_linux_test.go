package proxy

import "syscall"

// becomeSubreaper has successors whose parent exited reparented to the
// test process, to be reaped.
func becomeSubreaper() {
	const prSetChildSubreaper = 36 // prctl(2)
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}
