package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/systemd"
)

// execCommand runs argv in the current release, as the app's user, with the
// app's environment (the secret env file included), wired to the given
// streams. It returns the command's exit code.
func execCommand(ctx context.Context, l Layout, s *hostproto.Spec, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	id := l.CurrentID()
	if id == "" {
		return 0, fmt.Errorf("%s has no current release; deploy first", l.App)
	}
	return execIn(ctx, l, s, id, argv, stdin, stdout, stderr)
}

// execTerminal runs argv in the current release as execCommand does, on the
// terminal t: its stdin, stdout and stderr, with echo and line editing
// on again (the client turned them off to send its request).
func execTerminal(ctx context.Context, l Layout, s *hostproto.Spec, argv []string, t *os.File) (int, error) {
	id := l.CurrentID()
	if id == "" {
		return 0, fmt.Errorf("%s has no current release; deploy first", l.App)
	}
	if err := cookTerminal(t); err != nil {
		return 0, err
	}
	// sshd sets TERM from the client's; without it, a program falls
	// back to a dumb terminal (IEx to a limited shell, without remsh).
	var env []string
	if term := os.Getenv("TERM"); term != "" {
		env = append(env, "TERM="+term)
	}
	// ^C on the terminal reaches the command, in the terminal's process
	// group, as it reaches hoist: hoist waits for the command to end.
	return execIn(context.WithoutCancel(ctx), l, s, id, argv, t, t, t, env...)
}

// runHook runs a hook command in release id; a failure carries the tail
// of its output.
func runHook(ctx context.Context, l Layout, s *hostproto.Spec, id, name, command string, log io.Writer) error {
	timeout := s.HookTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fmt.Fprintf(log, "running %s hook: %s\n", name, command)
	var out tailWriter
	code, err := execIn(ctx, l, s, id, []string{"/bin/sh", "-c", command}, nil, &out, &out)
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s hook did not finish within %s; output:\n%s", name, timeout, out.String())
	}
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if code != 0 {
		return fmt.Errorf("%s hook failed with exit status %d; output:\n%s", name, code, out.String())
	}
	return nil
}

// tailWriter keeps the last 4 KiB written to it.
type tailWriter struct{ b []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return strings.TrimRight(string(t.b), "\n") }

// execIn runs argv in release id with its unit's environment, and
// extra after it.
func execIn(ctx context.Context, l Layout, s *hostproto.Spec, id string, argv []string, stdin io.Reader, stdout, stderr io.Writer, extra ...string) (int, error) {
	u, err := user.Lookup(l.User())
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	env, err := l.execEnv(s, id)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if strings.Contains(argv[0], "/") && !strings.HasPrefix(argv[0], "/") {
		cmd.Path = l.Release(id) + "/" + strings.TrimPrefix(argv[0], "./")
	}
	cmd.Dir = l.Release(id)
	cmd.Env = append(env, extra...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	return 0, nil
}

// execEnv is the environment of a command run in release id: its
// unit's, in the order systemd applies it (a later value wins).
func (l Layout) execEnv(s *hostproto.Spec, id string) ([]string, error) {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "STATE_DIRECTORY=" + l.StateDir()}
	env = append(env, systemd.ReleaseEnv(l.App, id, s.Port)...)
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	for _, f := range []string{l.CookieFile(), l.AccessoriesEnvFile(), l.EnvFile()} {
		secret, err := readEnvFile(f)
		if err != nil {
			return nil, err
		}
		env = append(env, secret...)
	}
	// Absent before the release first starts: then it gets run.port.
	ports, err := readEnvFile(l.portFile(id))
	if err != nil {
		return nil, err
	}
	env = append(env, ports...)
	if p := parsePorts(ports); p.EPMD != 0 {
		// A node started beside the release (rpc, remote) registers with
		// the release's epmd; when that is gone, it must fail rather
		// than start an epmd that outlives it.
		env = append(env, "ERL_ZFLAGS="+p.distFlags()+" -start_epmd false")
	}
	return env, nil
}

// readEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile does,
// for the common subset: comments, blank lines, optional quotes.
func readEnvFile(p string) ([]string, error) {
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	defer f.Close()
	return parseEnv(f)
}

func parseEnv(r io.Reader) ([]string, error) {
	var env []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		env = append(env, strings.TrimSpace(k)+"="+secrets.Unquote(strings.TrimSpace(v)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	return env, nil
}
