//go:build lab

// Package e2e drives the hoist binary against real hosts: a lab of
// systemd-nspawn machines with OpenSSH and systemd that the tests boot.
// Under CI=true a lab that cannot start fails the tests; elsewhere they
// are skipped with the reason.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// labName is the shared lab's name: "e2e", or HOIST_E2E_LAB's, for a
// second run on the same machine beside the first (with tests of
// their own: provisioning labs are named after their app, not this).
var labName = cmp.Or(os.Getenv("HOIST_E2E_LAB"), "e2e")

// labPackages are the Debian packages the lab hosts can install: what
// the accessories' tests set up.
const labPackages = "postgresql,redis-server"

var (
	work     string // temp dir for the whole run
	hoistBin string
	hoistEnv []string // HOIST_HOME, HOIST_CACHE for every hoist call

	labOnce  sync.Once
	labHosts []string
	labErr   error
	// labsUp are the other labs tests booted, taken down at the end.
	labsUp []string
)

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	// One e2e run at a time on a machine for each lab name.
	lockName := "hoist-e2e.lock"
	if labName != "e2e" {
		lockName = "hoist-e2e-" + labName + ".lock"
	}
	if lock, err := os.OpenFile(filepath.Join(os.TempDir(), lockName), os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		defer lock.Close()
		syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
	}
	var err error
	work, err = os.MkdirTemp("", "hoist-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	hoistBin = filepath.Join(work, "hoist")
	build := exec.Command("go", "build", "-o", hoistBin, "../cmd/hoist")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hoist:", err)
		return 1
	}
	hoistEnv = append(os.Environ(),
		"HOIST_HOME="+filepath.Join(work, "home"),
		"HOIST_CACHE="+filepath.Join(work, "cache"),
		"NO_COLOR=1",
	)
	code := m.Run()
	if labHosts != nil || labErr != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, name := range append([]string{labName}, labsUp...) {
			if _, stderr, err := hoist(ctx, "", "lab", "down", "--name", name); err != nil {
				fmt.Fprintf(os.Stderr, "lab down %s: %v\n%s", name, err, stderr)
				code = 1
			}
		}
	}
	return code
}

// needLab boots the lab once for the whole run and returns its addresses.
func needLab(t *testing.T) []string {
	t.Helper()
	labOnce.Do(func() {
		if runtime.GOOS != "linux" || os.Geteuid() != 0 {
			labErr = fmt.Errorf("the lab needs root on Linux")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		// A lab left by an interrupted run would hold its old deploys.
		hoist(ctx, "", "lab", "down", "--name", labName)
		// Accessories' packages come from the lab's local repository:
		// lab hosts reach no mirror.
		stdout, stderr, err := hoist(ctx, "", "lab", "up", "--name", labName, "--hosts", "2", "--packages", labPackages)
		if err != nil {
			labErr = fmt.Errorf("hoist lab up: %v\n%s", err, stderr)
			return
		}
		labHosts = strings.Fields(stdout)
		if len(labHosts) != 2 {
			labErr = fmt.Errorf("hoist lab up printed %q, want 2 addresses", stdout)
		}
	})
	if labErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab unavailable under CI: %v", labErr)
		}
		t.Skipf("lab unavailable: %v", labErr)
	}
	return labHosts
}

// hoist runs the hoist binary in dir and returns its stdout and stderr.
func hoist(ctx context.Context, dir string, args ...string) (string, string, error) {
	return hoistWithEnv(ctx, dir, hoistEnv, args...)
}

// startHoist starts hoist, which runs on while the test reads its
// stderr; the test waits for cmd.
func startHoist(ctx context.Context, t *testing.T, dir string, args ...string) (cmd *exec.Cmd, stderr io.ReadCloser) {
	t.Helper()
	cmd = exec.CommandContext(ctx, hoistBin, args...)
	cmd.Dir, cmd.Env = dir, hoistEnv
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

func hoistWithEnv(ctx context.Context, dir string, env []string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, hoistBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// hoistRun is what one hoist command did.
type hoistRun struct {
	stdout, stderr string
	err            error
}

// hoistAtOnce runs n times hoist with args in dir, all at once, as from
// n terminals, each for 3 minutes at most.
func hoistAtOnce(dir string, n int, args ...string) []hoistRun {
	runs := make([]hoistRun, n)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			r := &runs[i]
			r.stdout, r.stderr, r.err = hoist(ctx, dir, args...)
		}()
	}
	wg.Wait()
	return runs
}

// mustHoist runs hoist and fails the test when it fails.
func mustHoist(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return mustHoistLong(t, dir, 5*time.Minute, args...)
}

// mustHoistLong is mustHoist with up to d for hoist to finish.
func mustHoistLong(t *testing.T, dir string, d time.Duration, args ...string) string {
	t.Helper()
	stdout, _ := mustHoistBoth(t, dir, d, args...)
	return stdout
}

// mustHoistBoth is mustHoistLong that returns stderr too.
func mustHoistBoth(t *testing.T, dir string, d time.Duration, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	stdout, stderr, err := hoist(ctx, dir, args...)
	if err != nil {
		t.Fatalf("hoist %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

// failHoist runs hoist, expects it to fail, and returns its stderr.
func failHoist(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stdout, stderr, err := hoist(ctx, dir, args...)
	if err == nil {
		t.Fatalf("hoist %s succeeded, want a failure\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout, stderr)
	}
	return stderr
}

// appRepo is a git repository holding a copy of examples/hello.
type appRepo struct {
	dir     string
	name    string
	port    int
	changes int
}

// newApp copies examples/hello into a fresh repository, writes its
// hoist.yml for hosts, commits, and runs hoist setup.
func newApp(t *testing.T, name string, port int, hosts []string, extra string) *appRepo {
	t.Helper()
	a := &appRepo{dir: filepath.Join(work, "apps", name), name: name, port: port}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.go", "go.mod"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "hello", f))
		if err != nil {
			t.Fatal(err)
		}
		a.write(t, f, string(b))
	}
	a.writeConfig(t, hosts, extra)
	a.git(t, "init", "-q", "-b", "main")
	a.commit(t, "initial")
	return a
}

func (a *appRepo) writeConfig(t *testing.T, hosts []string, extra string) {
	t.Helper()
	a.write(t, "hoist.yml", fmt.Sprintf(`version: 1
app: %s
hosts: [%s]
build:
  command: CGO_ENABLED=0 go build -trimpath -o dist/hello .
  output: dist
run:
  command: ./hello
  port: %d
health:
  path: /up
  timeout: 15s
  interval: 300ms
keep_releases: 3
%s`, a.name, strings.Join(hosts, ", "), a.port, extra))
}

func (a *appRepo) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(a.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (a *appRepo) git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	cmd.Dir = a.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (a *appRepo) commit(t *testing.T, msg string) {
	t.Helper()
	a.git(t, "add", "-A")
	a.git(t, "commit", "-q", "--allow-empty", "-m", msg)
}

// edit replaces old with new in file and commits.
func (a *appRepo) edit(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	a.write(t, file, strings.Replace(string(b), old, new, 1))
	a.commit(t, "edit "+file)
}

// change makes a commit that changes the app's source, so that the next
// deploy builds a new release.
func (a *appRepo) change(t *testing.T) {
	t.Helper()
	a.changes++
	f, err := os.OpenFile(filepath.Join(a.dir, "main.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n// change %d\n", a.changes)
	f.Close()
	a.commit(t, fmt.Sprintf("change %d", a.changes))
}

// served returns what host answers on GET / for the app, or the error.
func (a *appRepo) served(addr string) string {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/", addr, a.port))
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.TrimSpace(string(b))
}

// wantServed asserts every host serves release id.
func (a *appRepo) wantServed(t *testing.T, hosts []string, id string) {
	t.Helper()
	want := "hello from release " + id
	for _, h := range hosts {
		if got := a.served(h); got != want {
			t.Errorf("%s serves %q, want %q", h, got, want)
		}
	}
}
