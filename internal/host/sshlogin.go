package host

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// sshLoginOnce finds this process's login once: one process serves one
// verb, which may write several lines.
var (
	sshLoginOnce sync.Once
	sshLoginOf   *hostproto.SSHLogin
	// findSSHLogin is the lookup, replaced in tests.
	findSSHLogin = func() *hostproto.SSHLogin { return sshLoginFrom("/proc", os.Getpid(), sshdJournal) }
)

func currentSSHLogin() *hostproto.SSHLogin {
	sshLoginOnce.Do(func() { sshLoginOf = findSSHLogin() })
	return sshLoginOf
}

// sshProc is an sshd process above this one: its pid and when it
// started.
type sshProc struct {
	pid   int
	since time.Time
}

// sshLoginFrom finds pid's login in the process tree under proc and the
// lines journal returns for the session's sshd processes; nil when pid
// is not under sshd or sshd logged nothing that says who logged in.
func sshLoginFrom(proc string, pid int, journal func(procs []sshProc) []string) *hostproto.SSHLogin {
	boot := bootTime(proc)
	var sshds []sshProc
	for i := 0; i < 64 && pid > 1; i++ {
		comm, ppid, start, ok := procStat(proc, pid)
		if !ok {
			break
		}
		// The session's child (the login user's, or root's) and the
		// privileged monitor above it, which logs the login: the first
		// root sshd is one of them, and its parent is the other or the
		// listener, which logs no login.
		if (comm == "sshd" || comm == "sshd-session") && rootsSSHD(proc, pid) {
			sshds = append(sshds, sshProc{pid: pid, since: boot.Add(start)})
			if len(sshds) == 2 {
				break
			}
		} else if len(sshds) > 0 {
			break
		}
		pid = ppid
	}
	if len(sshds) == 0 {
		return nil
	}
	var login *hostproto.SSHLogin
	for _, line := range journal(sshds) {
		if l := parseAccepted(line); l != nil {
			login = l // the last one: the session's own
		}
	}
	return login
}

// rootUID is root's uid; tests that are not root set their own.
var rootUID = 0

// rootsSSHD reports whether process pid runs as root from a binary root
// owns: sshd's privileged process, not a user's program of that name.
func rootsSSHD(proc string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return false
	}
	uid := -1
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				uid, _ = strconv.Atoi(f[0])
			}
		}
	}
	fi, err := os.Stat(filepath.Join(proc, strconv.Itoa(pid), "exe"))
	if err != nil || uid != rootUID {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == rootUID
}

// procStat reads a process's command name, parent and start time (since
// boot) from proc.
func procStat(proc string, pid int) (comm string, ppid int, start time.Duration, ok bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, 0, false
	}
	// pid (comm) state ppid ... starttime is the 22nd field; comm may
	// hold spaces and parentheses, so the fields start after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return "", 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	ticks, err2 := strconv.ParseInt(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	// USER_HZ is 100 on every Linux that userspace sees.
	return string(b[open+1 : end]), ppid, time.Duration(ticks) * (time.Second / 100), true
}

// bootTime is when the machine booted, from proc's stat (btime).
func bootTime(proc string) time.Time {
	b, _ := os.ReadFile(filepath.Join(proc, "stat"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(s, 0)
			}
		}
	}
	return time.Time{}
}

// sshdJournal is what the sshd processes wrote to the journal since the
// oldest of them started (a second early: btime is whole seconds); a
// pid the kernel gave an earlier process wrote before that.
func sshdJournal(procs []sshProc) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	since := procs[0].since
	args := []string{"--no-pager", "-q", "-o", "cat", "_UID=" + strconv.Itoa(rootUID)}
	for _, p := range procs {
		args = append(args, "_PID="+strconv.Itoa(p.pid))
		if p.since.Before(since) {
			since = p.since
		}
	}
	args = append(args, "--since", "@"+strconv.FormatInt(since.Add(-time.Second).Unix(), 10))
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	if err != nil {
		return nil
	}
	return strings.Split(string(out), "\n")
}

// accepted is sshd's line for a login it let in (auth.c, auth_log).
var accepted = regexp.MustCompile(`^Accepted (\S+) for (.+) from (\S+) port \d+ ssh2(?:: (\S+) (SHA256:\S+))?`)

func parseAccepted(line string) *hostproto.SSHLogin {
	m := accepted.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return nil
	}
	l := &hostproto.SSHLogin{Method: m[1], User: m[2], From: m[3]}
	if m[5] != "" {
		l.Key = m[4] + " " + m[5]
	}
	return l
}
