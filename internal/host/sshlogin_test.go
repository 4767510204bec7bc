package host

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// The host tests serve verbs in this process, which may run under a
// developer's own SSH login: their audit lines hold none.
func init() { findSSHLogin = func() *hostproto.SSHLogin { return nil } }

// fakeProc is a /proc of processes: pid -> comm, parent, uid.
type fakeProc struct {
	comm string
	ppid int
	uid  int
}

func writeProc(t *testing.T, procs map[int]fakeProc) string {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"), 0o644)
	exe := filepath.Join(root, "sbin-sshd")
	os.WriteFile(exe, nil, 0o755)
	for pid, p := range procs {
		d := filepath.Join(root, strconv.Itoa(pid))
		os.Mkdir(d, 0o755)
		// starttime (field 22) is pid seconds after boot, at USER_HZ 100.
		fields := []string{"S", strconv.Itoa(p.ppid)}
		for i := 2; i < 19; i++ {
			fields = append(fields, "0")
		}
		fields = append(fields, strconv.Itoa(pid*100), "0", "0")
		os.WriteFile(filepath.Join(d, "stat"), []byte(fmt.Sprintf("%d (%s) %s\n", pid, p.comm, strings.Join(fields, " "))), 0o644)
		os.WriteFile(filepath.Join(d, "status"), []byte(fmt.Sprintf("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n", p.comm, p.uid, p.uid, p.uid, p.uid)), 0o644)
		os.Symlink(exe, filepath.Join(d, "exe"))
	}
	return root
}

// The login is found from the process tree and the lines the session's
// root sshd processes logged, never a user's program named sshd.
func TestSSHLoginFrom(t *testing.T) {
	rootUID = os.Getuid()
	defer func() { rootUID = 0 }()
	user := rootUID + 1000
	const accepted = "Accepted publickey for deploy from 10.0.0.9 port 5555 ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	lines := map[int][]string{
		100: {"Server listening on 0.0.0.0 port 22."},
		200: {"Accepted publickey for deploy from 10.0.0.8 port 4444 ssh2: RSA SHA256:older", accepted},
		201: {"Accepted publickey for root from 10.0.0.1 port 1 ssh2: ED25519 SHA256:forged"}, // not root's: never asked
	}
	tests := map[string]struct {
		procs map[int]fakeProc
		asked []int
		want  *hostproto.SSHLogin
	}{
		"a user through sudo": {map[int]fakeProc{
			1: {"systemd", 0, rootUID}, 100: {"sshd", 1, rootUID}, 200: {"sshd", 100, rootUID}, 201: {"sshd", 200, user},
			300: {"sh", 201, user}, 350: {"sshd", 300, user}, 400: {"sudo", 350, rootUID}, 500: {"hoist", 400, rootUID},
		}, []int{200, 100}, &hostproto.SSHLogin{User: "deploy", Method: "publickey", Key: "ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", From: "10.0.0.9"}},
		"root": {map[int]fakeProc{
			1: {"systemd", 0, rootUID}, 100: {"sshd", 1, rootUID}, 200: {"sshd-session", 100, rootUID}, 201: {"sshd-session", 200, rootUID},
			300: {"sh", 201, rootUID}, 500: {"hoist", 300, rootUID},
		}, []int{201, 200}, &hostproto.SSHLogin{User: "deploy", Method: "publickey", Key: "ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", From: "10.0.0.9"}},
		"not over ssh": {map[int]fakeProc{1: {"systemd", 0, rootUID}, 300: {"cron", 1, rootUID}, 500: {"hoist", 300, rootUID}}, nil, nil},
		"under a user's own sshd only": {map[int]fakeProc{
			1: {"systemd", 0, rootUID}, 350: {"sshd", 1, user}, 400: {"sudo", 350, rootUID}, 500: {"hoist", 400, rootUID},
		}, nil, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			proc := writeProc(t, tt.procs)
			var asked []int
			got := sshLoginFrom(proc, 500, func(ps []sshProc) []string {
				var out []string
				for _, p := range ps {
					asked = append(asked, p.pid)
					if want := int64(1700000000 + p.pid); p.since.Unix() != want {
						t.Errorf("pid %d: since %d, want %d", p.pid, p.since.Unix(), want)
					}
					out = append(out, lines[p.pid]...)
				}
				return out
			})
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("asked the journal about %v, want %v", asked, tt.asked)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("login (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAccepted(t *testing.T) {
	tests := map[string]*hostproto.SSHLogin{
		"Accepted publickey for root from 10.77.0.2 port 41234 ssh2: ED25519 SHA256:xYz+/0":                                 {User: "root", Method: "publickey", Key: "ED25519 SHA256:xYz+/0", From: "10.77.0.2"},
		"Accepted publickey for ci from fd00::1 port 1 ssh2: ED25519-CERT SHA256:abc ID ci (serial 3) CA ED25519 SHA256:ca": {User: "ci", Method: "publickey", Key: "ED25519-CERT SHA256:abc", From: "fd00::1"},
		"Accepted password for ops from 10.0.0.1 port 22 ssh2":                                                              {User: "ops", Method: "password", From: "10.0.0.1"},
		"Failed publickey for root from 10.0.0.1 port 22 ssh2: ED25519 SHA256:x":                                            nil,
		"Invalid user admin from 10.0.0.1 port 22":                                                                          nil,
	}
	for line, want := range tests {
		if diff := cmp.Diff(want, parseAccepted(line)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", line, diff)
		}
	}
}
