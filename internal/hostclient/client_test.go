package hostclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// otherHost answers every verb as a host of hoist v9.9.9 that speaks
// protocol peer does, refusing the client's: what host.Serve writes then
// (internal/host tests that side).
type otherHost struct {
	peer hostproto.Peer
	// got is the client as the request named it.
	got *hostproto.Peer
}

func (h *otherHost) Addr() string { return "web1" }
func (h *otherHost) User() string { return "root" }
func (h *otherHost) Close() error { return nil }
func (h *otherHost) Run(_ context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	line, _ := io.ReadAll(stdin)
	var req hostproto.Request
	if err := json.Unmarshal(bytes.SplitN(line, []byte("\n"), 2)[0], &req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	h.got = req.Client
	ve := &hostproto.VersionError{Client: *req.Client, Host: h.peer}
	if strings.HasSuffix(cmd, " exec") {
		fmt.Fprintf(stderr, "hoist host: %v\n", ve)
	} else {
		hostproto.WriteError(stdout, ve)
	}
	return &transport.ExitError{Host: "web1", Cmd: cmd, Code: hostproto.ExitVersion}
}

// A host whose hoist speaks another protocol refuses this hoist: the
// error names both hoists and protocols, and says what to run.
func TestVersionMismatch(t *testing.T) {
	defer func(v string) { hostproto.Hoist = v }(hostproto.Hoist)
	hostproto.Hoist = "v1.4.0"
	for name, tt := range map[string]struct {
		host     hostproto.Peer
		call     func(*Client) error
		wantHint string
	}{
		"older host": {
			host:     hostproto.Peer{Hoist: "v1.2.0", Protocol: hostproto.Protocol - 1},
			call:     func(c *Client) error { _, err := c.Status(context.Background()); return err },
			wantHint: "run hoist setup to upgrade the hoist on web1 to this one (v1.4.0)",
		},
		"newer host": {
			host:     hostproto.Peer{Hoist: "v2.0.0", Protocol: hostproto.Protocol + 1},
			call:     func(c *Client) error { _, err := c.Status(context.Background()); return err },
			wantHint: "use hoist v2.0.0 here, or run hoist setup to put this hoist (v1.4.0) back on web1",
		},
		"stream verb": {
			host: hostproto.Peer{Hoist: "v1.2.0", Protocol: hostproto.Protocol - 1},
			call: func(c *Client) error {
				return c.Exec(context.Background(), &hostproto.Spec{}, []string{"true"}, io.Discard, io.Discard)
			},
			wantHint: "run hoist setup to upgrade the hoist on web1 to this one (v1.4.0)",
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := &otherHost{peer: tt.host}
			err := tt.call(&Client{Conn: h, App: "hello"})
			if h.got == nil || *h.got != (hostproto.Peer{Hoist: "v1.4.0", Protocol: hostproto.Protocol}) {
				t.Fatalf("the request named the client %+v", h.got)
			}
			want := fmt.Sprintf("web1 refuses this hoist's host protocol: hoist on the host is %s (protocol %d), the client is hoist v1.4.0 (protocol %d)",
				tt.host.Hoist, tt.host.Protocol, hostproto.Protocol)
			var ue *usererr.Error
			if err == nil || err.Error() != want || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want the user's error %q", err, want)
			}
			if hint := usererr.HintOf(err); !strings.Contains(hint, tt.wantHint) {
				t.Errorf("hint = %q, want %q", hint, tt.wantHint)
			}
		})
	}
}

// A host from before the handshake exits 2 on a request it does not
// know or cannot read: the error says so in the host's own words, with
// this hoist's version and what to run.
func TestHostBeforeTheHandshake(t *testing.T) {
	defer func(v string) { hostproto.Hoist = v }(hostproto.Hoist)
	hostproto.Hoist = "v1.4.0"
	for name, tt := range map[string]struct {
		stderr string
		call   func(*Client) error
		words  string // of the host's, that the error keeps
	}{
		"unknown verb": {
			stderr: `hoist host: unknown verb "store-fetch"`,
			call:   func(c *Client) error { _, err := c.FetchFromStore(context.Background(), nil); return err },
			words:  "unknown verb",
		},
		"request it misreads": {
			stderr: `error: --app "" is not a valid app name`,
			call:   func(c *Client) error { _, err := c.Status(context.Background()); return err },
			words:  "is not a valid app name",
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := tt.call(&Client{Conn: exitConn{code: hostproto.ExitUsage, stderr: tt.stderr}, App: "hello"})
			if err == nil || !strings.Contains(err.Error(), "does not understand this hoist's (v1.4.0) request") || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("err = %v", err)
			}
			if hint := usererr.HintOf(err); !strings.Contains(hint, "run hoist setup") || !strings.Contains(hint, "v1.4.0") {
				t.Errorf("hint = %q", hint)
			}
		})
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
