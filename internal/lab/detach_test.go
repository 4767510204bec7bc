package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// A machine outlives the hoist that booted it, so it must not keep what
// that hoist inherited: a `flock` wrapper's lock, for one.
func TestStartDetachedInheritsNoDescriptors(t *testing.T) {
	held := filepath.Join(t.TempDir(), "held")
	// Opened as a parent such as flock(1) would pass it on: without
	// O_CLOEXEC.
	fd, err := syscall.Open(held, syscall.O_RDWR|syscall.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("sleep", "60")
	if err := startDetached(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		target, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd/" + e.Name())
		if target == held {
			t.Errorf("the started process holds fd %s on %s", e.Name(), held)
		}
	}
	if len(fds) > 3 {
		t.Errorf("the started process holds %d descriptors, want only stdin, stdout and stderr", len(fds))
	}
}
