package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/ptytest"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// fakeConn is a transport that runs `hoist host` in-process, on a host
// whose apps live under base, logged in as user: both ends of the
// protocol as they meet over SSH, without SSH.
type fakeConn struct {
	base string
	user string
	cmds []string // the command lines run
}

func (c *fakeConn) Addr() string { return "fake" }
func (c *fakeConn) User() string { return c.user }
func (c *fakeConn) Close() error { return nil }

func (c *fakeConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.cmds = append(c.cmds, cmd)
	rest, sudo := strings.CutPrefix(cmd, "sudo -n ")
	if sudo != (c.user != "root") {
		return fmt.Errorf("%s ran %q", c.user, cmd)
	}
	words := strings.Fields(rest)
	if len(words) < 2 || words[0] != BinPath || words[1] != "host" {
		return &transport.ExitError{Host: "fake", Cmd: cmd, Code: 127}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if code := Serve(ctx, c.base, words[2:], stdin, stdout, stderr); code != 0 {
		return &transport.ExitError{Host: "fake", Cmd: cmd, Code: code}
	}
	return nil
}

func newFakeClient(t *testing.T, user string) (*hostclient.Client, *fakeConn, Layout) {
	conn := &fakeConn{base: t.TempDir(), user: user}
	return &hostclient.Client{Conn: conn, App: "hello"}, conn, For(conn.base, "hello")
}

// The client's calls reach the host's handlers with their arguments and
// payloads intact, and their results and errors come back typed.
func TestProtocolBothEnds(t *testing.T) {
	c, _, l := newFakeClient(t, "root")
	ctx := context.Background()
	r := build(t, "hello", id1, map[string][]byte{"app*": []byte("#!/bin/sh\n")})
	m := r.m

	st, err := c.ShipIndex(ctx, m, "", r.indexDelta(t, nil))
	if err != nil || st.Unpacked || st.Need == nil || st.Need.Bytes != 10 {
		t.Fatalf("ShipIndex = %+v, %v", st, err)
	}
	full := r.transfer(t, *st.Need)
	if _, err := c.Receive(ctx, m, bytes.NewReader(full[:len(full)/2])); err == nil || !strings.Contains(err.Error(), "connection ended") {
		t.Fatalf("a cut transfer: %v", err)
	}
	if got, err := c.Receive(ctx, m, bytes.NewReader(full)); err != nil || got.Files != 1 {
		t.Fatalf("Receive = %+v, %v", got, err)
	}
	if st, err := c.ShipIndex(ctx, m, "", nil); err != nil || !st.Unpacked {
		t.Fatalf("ShipIndex after the transfer = %+v, %v", st, err)
	}

	if err := c.SetEnv(ctx, []byte("SECRET=1\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(l.EnvFile()); err != nil || string(b) != "SECRET=1\n" {
		t.Errorf("env file holds %q, %v", b, err)
	}

	alice := hostproto.Lock{Holder: "alice@a (pid 1)", Op: "deploy"}
	if err := c.Lock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	var le *hostproto.LockedError
	if err := c.Lock(ctx, hostproto.Lock{Holder: "bob@b (pid 2)"}); !errors.As(err, &le) || le.Lock.Holder != alice.Holder || le.Lock.Op != "deploy" {
		t.Errorf("a second holder got %v, want a LockedError naming alice", err)
	}
	status, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.App != "hello" || status.Current != "" || status.Lock == nil || status.Lock.Holder != alice.Holder || status.Lock.Since.IsZero() {
		t.Errorf("Status = %+v", status)
	}
	if err := c.Unlock(ctx, "", true); err != nil {
		t.Fatal(err)
	}

	rs, err := c.Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].ID != id1 || rs[0].Commit != "abc" || rs[0].Current {
		t.Errorf("Releases = %+v", rs)
	}
	if prev, err := c.Previous(ctx); err != nil || prev != "" {
		t.Errorf("Previous = %q, %v", prev, err)
	}

	// A stream verb's failure is the command's: its exit status and stderr.
	var stdout, stderr bytes.Buffer
	err = c.Exec(ctx, &hostproto.Spec{App: "hello", Command: "./app", Port: 3000, HealthPath: "/up", HealthTimeout: 1, HealthInterval: 1, KeepReleases: 2},
		[]string{"true"}, &stdout, &stderr)
	var ee *transport.ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(stderr.String(), "hello has no current release") {
		t.Errorf("exec without a current release: %v, stderr %q", err, stderr.String())
	}
}

// sudo follows the user the connection logged in as, not a setting.
func TestSudoFollowsTheLogin(t *testing.T) {
	for _, user := range []string{"root", "deploy"} {
		t.Run(user, func(t *testing.T) {
			c, conn, _ := newFakeClient(t, user)
			if _, err := c.Releases(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := BinPath + " host releases"
			if user != "root" {
				want = "sudo -n " + want
			}
			if diff := cmp.Diff([]string{want}, conn.cmds); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}

// What the host refuses, and how it says so.
func TestServeRefusals(t *testing.T) {
	tests := map[string]struct {
		argv     []string
		stdin    string
		code     int
		inStdout string // in the Response
		inStderr string
	}{
		"no verb":          {nil, "", 2, "", "usage: hoist host VERB"},
		"unknown verb":     {[]string{"nope"}, "", 2, "", `unknown verb "nope"`},
		"two verbs":        {[]string{"status", "releases"}, "", 2, "", "usage"},
		"no request":       {[]string{"status"}, "", 1, "read request", ""},
		"not JSON":         {[]string{"status"}, "status please\n", 1, "decode request", ""},
		"bad app":          {[]string{"status"}, `{"app":"../etc"}` + "\n", 1, `\"../etc\" is not a valid app name`, ""},
		"reserved in spec": {[]string{"setup"}, `{"app":"web","args":{"app":"proxy","command":"./x","port":80}}` + "\n", 1, `\"proxy\" is reserved`, ""},
		"reserved app":     {[]string{"setup"}, `{"app":"proxy","args":{"app":"proxy","command":"./x","port":80}}` + "\n", 1, `\"proxy\" is reserved`, ""},
		"unknown field":    {[]string{"lock"}, `{"app":"hello","args":{"holder":"a","hodler":"b"}}` + "\n", 1, `unknown field \"hodler\"`, ""},
		"bad release id":   {[]string{"activate"}, `{"app":"hello","args":{"id":"latest"}}` + "\n", 1, `invalid release id \"latest\"`, ""},
		"invalid spec":     {[]string{"setup"}, `{"app":"hello","args":{"app":"hello"}}` + "\n", 1, "spec of hello has no command", ""},
		"stream verb bad":  {[]string{"exec"}, `{"app":"hello","args":{"argv":[]}}` + "\n", 1, "", "exec: no command"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Serve(context.Background(), t.TempDir(), tt.argv, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.inStdout) || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", stdout.String(), stderr.String(), tt.inStdout, tt.inStderr)
			}
			var re *hostproto.RemoteError
			if err := hostproto.DecodeResponse(stdout.Bytes(), nil); tt.inStdout != "" && !errors.As(err, &re) {
				t.Errorf("stdout is not a failed Response: %q", stdout.String())
			}
		})
	}
}

// The boot unit's stdin is a request like the client's.
func TestBootRequest(t *testing.T) {
	req, err := hostproto.ReadRequest(bufio.NewReader(strings.NewReader(BootRequest("hello", "staging") + "\n")))
	if err != nil || req.App != "hello" || req.Destination != "staging" {
		t.Fatalf("BootRequest decodes to %+v, %v", req, err)
	}
	if _, err := hostproto.DecodeArgs[hostproto.None](req.Args); err != nil {
		t.Fatal(err)
	}
}

// What the host does while it activates reaches the client's log as it
// happens, and stays in the release's activation log on the host. (The
// activation stops at its before_switch hook, before it would drive
// systemd: the app's user does not exist here.)
func TestActivateLogReachesTheClient(t *testing.T) {
	c, _, l := newFakeClient(t, "root")
	install(t, l, id1)
	spec := &hostproto.Spec{App: "hello", Command: "./app", Port: 3000, HealthPath: "/up", HealthTimeout: time.Second,
		HealthInterval: time.Second, KeepReleases: 2, BeforeSwitch: "migrate"}
	saved := UnitDir
	UnitDir = t.TempDir()
	t.Cleanup(func() { UnitDir = saved })
	units, err := appUnits(l, spec)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range units {
		// In place already: nothing to reload.
		if err := os.WriteFile(filepath.Join(UnitDir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	err = c.Activate(context.Background(), spec, id1, "deploy", &log)
	if err == nil || !strings.Contains(err.Error(), "before_switch hook") {
		t.Fatalf("Activate = %v, want the hook's failure", err)
	}
	lines := strings.Split(strings.TrimRight(log.String(), "\n"), "\n")
	want := []string{`^ +0\.\ds running before_switch hook: migrate$`, `^ +0\.\ds failed: before_switch hook: .*hoist-hello`}
	if len(lines) != len(want) {
		t.Fatalf("the client's log:\n%s\nwant %d lines", log.String(), len(want))
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}
	kept, err := os.ReadFile(l.activationLog(id1))
	if err != nil || !strings.HasSuffix(string(kept), log.String()) {
		t.Errorf("the host kept %q, %v; want it to end with what the client got", kept, err)
	}
}

// Called on a terminal (exec -t), the host reads its request and not a
// byte more: what follows was typed for the command, which reads the
// terminal itself, and which gets it with echo and line editing on again.
func TestTerminalRequest(t *testing.T) {
	ptm, pts, err := ptytest.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	defer pts.Close()
	// As the client asks for it: no echo, no line editing.
	if err := ptytest.SetModes(pts, false); err != nil {
		t.Fatal(err)
	}
	line, _ := hostproto.Request{App: "hello"}.Encode(hostproto.ExecArgs{Spec: hostproto.Spec{App: "hello", Command: "./app", Port: 3000, HealthPath: "/up",
		HealthTimeout: time.Second, HealthInterval: time.Second, KeepReleases: 2}, Argv: []string{"sh"}, Terminal: true})
	if _, err := ptm.Write(append(line, "typed\n"...)); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	// No current release: the verb stops once it has read its request.
	if code := Serve(context.Background(), t.TempDir(), []string{"exec"}, pts, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "no current release") {
		t.Fatalf("serve = %d, %q; want the missing release named", code, stderr.String())
	}
	left := make(chan string, 1)
	go func() {
		rest := make([]byte, 64)
		n, _ := pts.Read(rest)
		left <- string(rest[:n])
	}()
	select {
	case got := <-left:
		if got != "typed\n" {
			t.Errorf("left on the terminal: %q; want what was typed after the request", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing left on the terminal: the host read what was typed after its request")
	}

	if err := cookTerminal(pts); err != nil {
		t.Fatal(err)
	}
	if echo, editing, err := ptytest.Modes(pts); err != nil || !echo || !editing {
		t.Errorf("after cookTerminal: echo %v, line editing %v, %v; want both on", echo, editing, err)
	}
}

// What a host says to do about its error reaches the person at the
// terminal, beside the structured cause.
func TestRemoteErrorKeepsHint(t *testing.T) {
	for name, sent := range map[string]error{
		"user error": usererr.New("port 3130 is held by hello").WithHint("give this app another run.port"),
		"locked with a hint": fmt.Errorf("activate: %w", &usererr.Error{Msg: "locked", Hint: "wait for it",
			Err: &hostproto.LockedError{Lock: hostproto.Lock{Holder: "ann"}}}),
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			hostproto.WriteError(&b, sent)
			got := hostproto.DecodeResponse(b.Bytes(), nil)
			if got == nil || got.Error() != sent.Error() {
				t.Fatalf("decoded %v, want %v", got, sent)
			}
			if h := usererr.HintOf(got); h != usererr.HintOf(sent) {
				t.Errorf("hint %q, want %q", h, usererr.HintOf(sent))
			}
			var le *hostproto.LockedError
			if errors.As(sent, &le) != errors.As(got, &le) {
				t.Errorf("errors.As(*LockedError) differs: sent %v, got %v", errors.As(sent, &le), errors.As(got, &le))
			}
		})
	}
}

// A request from a hoist of another protocol is refused before anything
// else of it is read, with the host's hoist and protocol: in a Response
// for a verb that answers, on stderr for a stream verb (whose stdout is
// the command's). One from before the handshake, naming none, is served.
func TestServeRefusesAnotherProtocol(t *testing.T) {
	defer func(v string) { hostproto.Hoist = v }(hostproto.Hoist)
	hostproto.Hoist = "v1.4.0"
	other := &hostproto.Peer{Hoist: "v9.0.0", Protocol: hostproto.Protocol + 1}
	want := hostproto.VersionError{Client: *other, Host: hostproto.Peer{Hoist: "v1.4.0", Protocol: hostproto.Protocol}}
	line, _ := hostproto.Request{App: "hello", Client: other}.Encode(hostproto.None{})
	var stdout, stderr bytes.Buffer
	if code := Serve(context.Background(), t.TempDir(), []string{"status"}, bytes.NewReader(line), &stdout, &stderr); code != hostproto.ExitVersion {
		t.Fatalf("status exited %d, want %d; stderr %q", code, hostproto.ExitVersion, stderr.String())
	}
	var ve *hostproto.VersionError
	if err := hostproto.DecodeResponse(stdout.Bytes(), nil); !errors.As(err, &ve) || *ve != want {
		t.Fatalf("status answered %v (%q), want %+v", err, stdout.String(), want)
	}

	stdout.Reset()
	line, _ = hostproto.Request{App: "hello", Client: other}.Encode(hostproto.LogsArgs{Lines: 1})
	if code := Serve(context.Background(), t.TempDir(), []string{"logs"}, bytes.NewReader(line), &stdout, &stderr); code != hostproto.ExitVersion || stdout.Len() != 0 {
		t.Fatalf("logs exited %d with stdout %q", code, stdout.String())
	}
	if got := hostproto.ParseVersionError(stderr.String()); got == nil || *got != want {
		t.Fatalf("logs said %q on stderr, want %+v", stderr.String(), want)
	}

	stdout.Reset()
	line, _ = hostproto.Request{App: "hello"}.Encode(hostproto.None{})
	if code := Serve(context.Background(), t.TempDir(), []string{"releases"}, bytes.NewReader(line), &stdout, io.Discard); code != 0 {
		t.Fatalf("a request naming no version: exit %d, %q", code, stdout.String())
	}
}
