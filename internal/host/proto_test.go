package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
	if code := serve(ctx, c.base, words[2:], stdin, stdout, stderr); code != 0 {
		return &transport.ExitError{Host: "fake", Cmd: cmd, Code: code}
	}
	return nil
}

func newFakeClient(t *testing.T, user string) (*Client, *fakeConn, Layout) {
	conn := &fakeConn{base: t.TempDir(), user: user}
	return &Client{Conn: conn, App: "hello"}, conn, For(conn.base, "hello")
}

// The client's calls reach the host's handlers with their arguments and
// payloads intact, and their results and errors come back typed.
func TestProtocolBothEnds(t *testing.T) {
	c, _, l := newFakeClient(t, "root")
	ctx := context.Background()
	m, payload := packed(t, "hello", id1)

	st, err := c.UploadState(ctx, m)
	if err != nil || st != (UploadState{}) {
		t.Fatalf("UploadState of a new release = %+v, %v", st, err)
	}
	half := int64(len(payload) / 2)
	if err := c.Receive(ctx, m, 0, bytes.NewReader(payload[:half])); err == nil || !strings.Contains(err.Error(), "connection ended") {
		t.Fatalf("a cut upload: %v", err)
	}
	if st, err := c.UploadState(ctx, m); err != nil || st.Have != half {
		t.Fatalf("UploadState after the cut = %+v, %v; want %d bytes", st, err, half)
	}
	if err := c.Receive(ctx, m, half, bytes.NewReader(payload[half:])); err != nil {
		t.Fatal(err)
	}
	if st, err := c.UploadState(ctx, m); err != nil || !st.Unpacked {
		t.Fatalf("UploadState after the upload = %+v, %v", st, err)
	}

	if err := c.SetEnv(ctx, []byte("SECRET=1\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(l.EnvFile()); err != nil || string(b) != "SECRET=1\n" {
		t.Errorf("env file holds %q, %v", b, err)
	}

	alice := Lock{Holder: "alice@a (pid 1)", Op: "deploy"}
	if err := c.Lock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if err := c.Lock(ctx, Lock{Holder: "bob@b (pid 2)"}); !errors.As(err, &le) || le.Lock.Holder != alice.Holder || le.Lock.Op != "deploy" {
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
	err = c.Exec(ctx, &Spec{App: "hello", Command: "./app", Port: 3000, HealthPath: "/up", HealthTimeout: 1, HealthInterval: 1, KeepReleases: 2},
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
		"no verb":         {nil, "", 2, "", "usage: hoist host VERB"},
		"unknown verb":    {[]string{"nope"}, "", 2, "", `unknown verb "nope"`},
		"two verbs":       {[]string{"status", "releases"}, "", 2, "", "usage"},
		"no request":      {[]string{"status"}, "", 1, "read request", ""},
		"not JSON":        {[]string{"status"}, "status please\n", 1, "decode request", ""},
		"bad app":         {[]string{"status"}, `{"app":"../etc"}` + "\n", 1, `invalid app name \"../etc\"`, ""},
		"unknown field":   {[]string{"lock"}, `{"app":"hello","args":{"holder":"a","hodler":"b"}}` + "\n", 1, `unknown field \"hodler\"`, ""},
		"bad release id":  {[]string{"activate"}, `{"app":"hello","args":{"id":"latest"}}` + "\n", 1, `invalid release id \"latest\"`, ""},
		"invalid spec":    {[]string{"setup"}, `{"app":"hello","args":{"app":"hello"}}` + "\n", 1, "spec of hello has no command", ""},
		"stream verb bad": {[]string{"exec"}, `{"app":"hello","args":{"argv":[]}}` + "\n", 1, "", "exec: no command"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := serve(context.Background(), t.TempDir(), tt.argv, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.inStdout) || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", stdout.String(), stderr.String(), tt.inStdout, tt.inStderr)
			}
			var re *RemoteError
			if err := decodeResponse(stdout.Bytes(), nil); tt.inStdout != "" && !errors.As(err, &re) {
				t.Errorf("stdout is not a failed Response: %q", stdout.String())
			}
		})
	}
}

// The boot unit's stdin is a request like the client's.
func TestBootRequest(t *testing.T) {
	req, err := readRequest(bufio.NewReader(strings.NewReader(BootRequest("hello", "staging") + "\n")))
	if err != nil || req.App != "hello" || req.Destination != "staging" {
		t.Fatalf("BootRequest decodes to %+v, %v", req, err)
	}
	if _, err := decodeArgs[none](req.Args); err != nil {
		t.Fatal(err)
	}
}

// exitConn is a host whose `hoist host` exits with code, saying stderr.
type exitConn struct {
	code   int
	stderr string
}

func (c exitConn) Addr() string { return "old" }
func (c exitConn) User() string { return "root" }
func (c exitConn) Close() error { return nil }
func (c exitConn) Run(_ context.Context, cmd string, _ io.Reader, _, stderr io.Writer) error {
	io.WriteString(stderr, c.stderr)
	return &transport.ExitError{Host: "old", Cmd: cmd, Code: c.code}
}

// A host whose hoist speaks another protocol refuses the request as a
// usage error (exit status 2): the client says to update it.
func TestOtherHoistOnTheHost(t *testing.T) {
	c := &Client{Conn: exitConn{code: 2, stderr: `error: --app "" is not a valid app name`}, App: "hello"}
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not understand") || !strings.Contains(usererr.HintOf(err), "hoist setup") {
		t.Fatalf("err = %v (hint %q), want one that says to run hoist setup", err, usererr.HintOf(err))
	}
	if !strings.Contains(err.Error(), "is not a valid app name") {
		t.Errorf("err = %v, want the host's own words", err)
	}
}
