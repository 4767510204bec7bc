package lab

import (
	"bufio"
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
	// The child says when it has started, and then waits on its stdin: a
	// program that is still being loaded holds the files it loads from
	// for a moment.
	cmd := exec.Command("sh", "-c", "echo started; read x")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := startDetached(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("the child said %q, %v", line, err)
	}
	dir := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd/"
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, e := range fds {
		target, _ := os.Readlink(dir + e.Name())
		targets = append(targets, e.Name()+" -> "+target)
		if target == held {
			t.Errorf("the started process holds fd %s on %s", e.Name(), held)
		}
	}
	if len(fds) > 3 {
		t.Errorf("the started process holds %v, want only stdin, stdout and stderr", targets)
	}
}
