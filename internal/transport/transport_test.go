package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/skeema/knownhosts"

	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/usererr"
)

type fixture struct {
	srv   *testServer
	home  string
	key   string // client key file
	trust string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	signer, pemBytes := newKey(t)
	home := t.TempDir()
	return &fixture{
		srv:   startServer(t, signer.PublicKey()),
		home:  home,
		key:   writeKey(t, home, "id_test", pemBytes),
		trust: filepath.Join(home, "trust", "known_hosts"),
	}
}

func (f *fixture) opts() Options {
	return Options{IdentityFiles: []string{f.key}, TrustFile: f.trust, KnownHostsFiles: []string{}, SSHConfigFile: "none", Home: f.home, ConnectTimeout: 5 * time.Second,
		AcceptNewHostKeys: true}
}

func dial(t *testing.T, target string, o Options) *SSH {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, target, o)
	if err != nil {
		t.Fatalf("Dial %s: %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunPlumbsStreamsAndExitStatus(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.srv.addr, f.opts())
	tests := map[string]struct {
		cmd, stdin     string
		stdout, stderr string
		code           int
	}{
		"stdin to stdout": {"cat", "payload", "payload", "", 0},
		"stderr":          {"echo oops >&2", "", "", "oops\n", 0},
		"exit status":     {"echo no >&2; exit 3", "", "", "no\n", 3},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			var in *strings.Reader
			if tt.stdin != "" {
				in = strings.NewReader(tt.stdin)
			}
			var err error
			if in != nil {
				err = c.Run(context.Background(), tt.cmd, in, &out, &errb)
			} else {
				err = c.Run(context.Background(), tt.cmd, nil, &out, &errb)
			}
			code := 0
			var ee *ExitError
			if errors.As(err, &ee) {
				code = ee.Code
				if !strings.Contains(ee.Error(), "exited with status 3: no") {
					t.Errorf("ExitError text %q", ee.Error())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got := []any{out.String(), errb.String(), code}
			if diff := cmp.Diff([]any{tt.stdout, tt.stderr, tt.code}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAcceptNewThenChangedKeyRefused(t *testing.T) {
	f := newFixture(t)
	var log bytes.Buffer
	o := f.opts()
	o.Log = &log
	dial(t, f.srv.addr, o).Close()
	if !strings.Contains(log.String(), "recorded new host key for "+f.srv.addr) {
		t.Errorf("no note about the recorded key: %q", log.String())
	}
	recorded, err := os.ReadFile(f.trust)
	if err != nil || !bytes.Contains(recorded, []byte("ssh-ed25519")) {
		t.Fatalf("trust file %q, %v", recorded, err)
	}
	// The same server again: accepted silently.
	log.Reset()
	dial(t, f.srv.addr, o).Close()
	if log.Len() != 0 {
		t.Errorf("known host logged %q", log.String())
	}
	// Another key recorded for the address, as if the host changed: refused.
	other, _ := newKey(t)
	forged := []byte(knownhosts.Line([]string{f.srv.addr}, other.PublicKey()) + "\n")
	if err := os.WriteFile(f.trust, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, f.srv.addr, o)
	if err == nil || !strings.Contains(err.Error(), "has changed") || !strings.Contains(err.Error(), f.trust+":1") {
		t.Fatalf("changed key: err = %v", err)
	}
	if usererr.HintOf(err) == "" {
		t.Error("changed key error has no hint")
	}
	after, _ := os.ReadFile(f.trust)
	if !bytes.Equal(forged, after) {
		t.Error("trust file modified after a changed key")
	}
}

func TestUnknownHostWithoutTrustFileRefused(t *testing.T) {
	f := newFixture(t)
	o := f.opts()
	o.TrustFile = ""
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, f.srv.addr, o)
	if err == nil || !strings.Contains(err.Error(), "is not known") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthFailureNamesKeys(t *testing.T) {
	f := newFixture(t)
	_, otherPEM := newKey(t)
	o := f.opts()
	o.IdentityFiles = []string{writeKey(t, f.home, "id_other", otherPEM)}
	o.User = "deploy"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, f.srv.addr, o)
	if err == nil || !strings.Contains(err.Error(), "refused login as deploy") || !strings.Contains(err.Error(), "id_other") {
		t.Fatalf("err = %v", err)
	}
}

func TestConnectionRefusedNamesHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, addr, f.opts())
	if err == nil || !strings.Contains(err.Error(), "cannot reach "+addr) || usererr.HintOf(err) == "" {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelStopsRemoteCommand(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.srv.addr, f.opts())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Run(ctx, "sleep 30", nil, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

func TestProxyJumpAndSSHConfig(t *testing.T) {
	f := newFixture(t)
	// The jump host accepts the same client key.
	pub := mustPub(t, f.key)
	jump := startServer(t, pub)
	jh, jp, _ := net.SplitHostPort(jump.addr)
	th, tp, _ := net.SplitHostPort(f.srv.addr)
	cfg := filepath.Join(f.home, "config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`Host bastion
  HostName %s
  Port %s
  IdentityFile %s
Host app
  HostName %s
  Port %s
  User root
  IdentityFile %s
  ProxyJump bastion
`, jh, jp, f.key, th, tp, f.key)), 0o600)
	o := f.opts()
	o.IdentityFiles = nil
	o.SSHConfigFile = cfg
	c := dial(t, "app", o)
	var out bytes.Buffer
	if err := c.Run(context.Background(), "echo through", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "through\n" {
		t.Errorf("got %q", out.String())
	}
	b, _ := os.ReadFile(f.trust)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("want both hops' keys recorded, got:\n%s", b)
	}
	// The key that names the machine is the target's, not the jump host's.
	if got, want := c.HostKey(), ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()); got != want {
		t.Errorf("HostKey() = %q, want the target's %q (the jump host's is %q)", got, want, ssh.FingerprintSHA256(jump.hostKey.PublicKey()))
	}
	// Known now, the key is read again on the next connection.
	again := dial(t, "app", o)
	defer again.Close()
	if got, want := again.HostKey(), ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()); got != want {
		t.Errorf("HostKey() of a known host = %q, want %q", got, want)
	}
}

func TestParseTarget(t *testing.T) {
	tests := map[string]struct {
		in   string
		want Target
		err  bool
	}{
		"host":       {in: "web1", want: Target{Host: "web1"}},
		"user host":  {in: "deploy@web1", want: Target{User: "deploy", Host: "web1"}},
		"port":       {in: "web1:2222", want: Target{Host: "web1", Port: 2222}},
		"all":        {in: "a@10.0.0.1:22", want: Target{User: "a", Host: "10.0.0.1", Port: 22}},
		"ipv6":       {in: "[::1]:2200", want: Target{Host: "::1", Port: 2200}},
		"bare ipv6":  {in: "fe80::1", want: Target{Host: "fe80::1"}},
		"empty":      {in: "", err: true},
		"bad port":   {in: "h:99999", err: true},
		"empty user": {in: "@h", err: true},
		"space":      {in: "a b", err: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"h", "u@h:1", "[::1]:22", "a@b@c", ":", "[x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Host == "" || tg.Port < 0 || tg.Port > 65535 || strings.ContainsAny(tg.Host, " \t\n/") {
			t.Fatalf("ParseTarget(%q) = %+v", s, tg)
		}
	})
}

func mustPub(t *testing.T, keyFile string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

// The user a connection logged in as is what decides sudo on the host,
// wherever it was named: user@host, Options (hoist.yml's ssh.user) or
// ~/.ssh/config.
func TestUserIsTheLogin(t *testing.T) {
	f := newFixture(t)
	host, port, _ := net.SplitHostPort(f.srv.addr)
	cfg := filepath.Join(f.home, "config")
	os.WriteFile(cfg, []byte("Host configured\n  HostName "+host+"\n  Port "+port+"\n  User carol\n"), 0o600)
	tests := map[string]struct {
		target, optUser, sshConfig, want string
	}{
		"nobody named":              {f.srv.addr, "", "none", "root"},
		"ssh.user":                  {f.srv.addr, "alice", "none", "alice"},
		"user@host":                 {"bob@" + f.srv.addr, "", "none", "bob"},
		"user@host over ssh.user":   {"bob@" + f.srv.addr, "alice", "none", "bob"},
		"ssh_config":                {"configured", "", cfg, "carol"},
		"ssh.user over ssh_config":  {"configured", "alice", cfg, "alice"},
		"user@host over ssh_config": {"bob@configured", "", cfg, "bob"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := f.opts()
			o.User, o.SSHConfigFile = tt.optUser, tt.sshConfig
			if got := dial(t, tt.target, o).User(); got != tt.want {
				t.Errorf("logged in as %q, want %q", got, tt.want)
			}
		})
	}
}

// RunTerminal asks for a terminal of the local one's type and size, with
// echo and line editing off, passes size changes on while the command
// runs, and ends when the command does, whatever stdin does.
func TestRunTerminal(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.srv.addr, f.opts())
	resize := make(chan Size, 1)
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close() // never closed before the command ends
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- c.RunTerminal(context.Background(), "read line; echo got $line; exit 4",
			Terminal{Term: "xterm-256color", Size: Size{Width: 111, Height: 33}, Resize: resize}, stdinR, &out)
	}()
	p := <-f.srv.ptys
	if p.Term != "xterm-256color" || p.Columns != 111 || p.Rows != 33 {
		t.Errorf("asked for a terminal %+v, want xterm-256color 111x33", p)
	}
	if !sameModes(p.Modes, ssh.TerminalModes{ssh.ECHO: 0, ssh.ICANON: 0}) {
		t.Errorf("terminal modes %x, want echo and icanon off", p.Modes)
	}
	resize <- Size{Width: 120, Height: 40}
	if got := <-f.srv.resizes; got != (Size{Width: 120, Height: 40}) {
		t.Errorf("window change %+v, want 120x40", got)
	}
	io.WriteString(stdinW, "x\n")
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("RunTerminal still waits for stdin after the command ended")
	}
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 4 || out.String() != "got x\n" {
		t.Errorf("RunTerminal = %v with %q, want exit status 4 with \"got x\"", err, out.String())
	}
}

// sameModes reports whether an encoded mode list holds exactly modes.
func sameModes(encoded string, modes ssh.TerminalModes) bool {
	got := map[uint8]uint32{}
	b := []byte(encoded)
	for len(b) >= 5 && b[0] != 0 {
		got[b[0]] = binary.BigEndian.Uint32(b[1:5])
		b = b[5:]
	}
	if len(got) != len(modes) {
		return false
	}
	for k, v := range modes {
		if got[k] != v {
			return false
		}
	}
	return true
}
