// Package transport is how hoist reaches hosts: SSH with host keys checked
// against known_hosts, keys from ssh-agent and files, and ~/.ssh/config
// for User, Port, HostName, IdentityFile and ProxyJump.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Conn is the seam the rest of hoist uses to run commands on a host.
type Conn interface {
	// Run runs cmd, a shell command line, on the host. stdin may be nil.
	// It returns *ExitError when the command exits non-zero. Cancelling
	// ctx signals the remote command and closes the session.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// Addr is the host as the user named it, for messages.
	Addr() string
	// User is the user the session logged in as, however it was named
	// (user@host, Options.User, ~/.ssh/config): it decides sudo.
	User() string
	Close() error
}

// TerminalConn is a Conn that can also run a command on a terminal of
// the host, as ssh -t does: for a remote shell or a console.
type TerminalConn interface {
	Conn
	// RunTerminal runs cmd on a pseudo-terminal of the host, which is its
	// stdin, stdout and stderr. The terminal starts with echo and line
	// editing off, so that what stdin sends first (a request line)
	// reaches cmd as it is; cmd turns them on. It returns *ExitError
	// when cmd exits non-zero.
	RunTerminal(ctx context.Context, cmd string, t Terminal, stdin io.Reader, stdout io.Writer) error
}

// Terminal is the terminal a command runs on with RunTerminal: its
// type and size, and the sizes it takes while the command runs.
type Terminal struct {
	Term   string // $TERM
	Size   Size
	Resize <-chan Size
}

// Size is a terminal's size in characters.
type Size struct{ Width, Height int }

// ExitError is a remote command that exited non-zero.
type ExitError struct {
	Host   string
	Cmd    string
	Code   int
	Stderr string // the tail of its stderr, when it was captured
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: %s exited with status %d", e.Host, shorten(e.Cmd, 120), e.Code)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// ExitCode returns the remote exit status.
func (e *ExitError) ExitCode() int { return e.Code }

// Options configure Dial.
type Options struct {
	// User to log in as. Default: ssh_config's User, else root.
	User string
	// Port of the SSH server. Default: ssh_config's Port, else 22.
	Port int
	// IdentityFiles are tried in order, after ssh_config's IdentityFile
	// and before ~/.ssh/id_ed25519, id_ecdsa and id_rsa.
	IdentityFiles []string
	// Signers are keys held in memory (a CI job's, from the environment),
	// tried before the key files.
	Signers []ssh.Signer
	// KnownHostsFiles are read-only known_hosts files. Default:
	// ~/.ssh/known_hosts when it exists.
	KnownHostsFiles []string
	// TrustFile is hoist's own known_hosts: read too, and where the key of
	// a host never seen before is recorded once accepted (ConfirmHostKey,
	// AcceptNewHostKeys). A changed key is always refused. Without it no
	// new host is accepted.
	TrustFile string
	// ConfirmHostKey asks the person at the terminal whether to trust a
	// host never seen before, as ssh does, with the question to show
	// (the key's type and fingerprint); nil where there is no terminal:
	// such a host is then refused, unless AcceptNewHostKeys or
	// ssh_config's StrictHostKeyChecking accept-new accepts it.
	ConfirmHostKey func(question string) (bool, error)
	// AcceptNewHostKeys records the key of a host never seen before
	// without asking, as StrictHostKeyChecking accept-new does.
	AcceptNewHostKeys bool
	// SSHConfigFile is the ssh_config to read; default ~/.ssh/config,
	// "none" disables it.
	SSHConfigFile string
	// ConnectTimeout bounds the TCP connect and SSH handshake. Default 10s.
	ConnectTimeout time.Duration
	// Log receives notes for people (a recorded host key).
	Log io.Writer
	// Home overrides the home directory, for tests.
	Home string
}

func (o *Options) home() string {
	if o.Home != "" {
		return o.Home
	}
	h, _ := os.UserHomeDir()
	return h
}

// SSH is a connection to one host.
type SSH struct {
	addr    string
	client  *ssh.Client
	hostKey string      // the SHA256 fingerprint of the key the host presented
	closers []io.Closer // jump hosts, closed after client
	done    chan struct{}
	once    sync.Once
}

func (s *SSH) Addr() string { return s.addr }

// HostKey is the SHA256 fingerprint of the key the host presented: two
// names that reach one machine present the same.
func (s *SSH) HostKey() string { return s.hostKey }

// User is the user the connection logged in as.
func (s *SSH) User() string { return s.client.User() }

// Sudo is what prefixes a command that needs root on conn's host:
// `sudo -n ` unless the session logged in as root. Such a login must have
// passwordless sudo.
func Sudo(conn Conn) string {
	if conn.User() == "root" {
		return ""
	}
	return "sudo -n "
}

// Close closes the connection and any jump hosts.
func (s *SSH) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.client.Close()
		for i := len(s.closers) - 1; i >= 0; i-- {
			s.closers[i].Close()
		}
	})
	return err
}

// Target is a parsed [user@]host[:port].
type Target struct {
	User string
	Host string
	Port int // 0 when not given
}

// ParseTarget parses [user@]host[:port], with [v6]:port for IPv6.
func ParseTarget(s string) (Target, error) {
	var t Target
	if s == "" || strings.ContainsAny(s, " \t\n/") {
		return t, fmt.Errorf("invalid host %q", s)
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if t.User == "" {
			return t, fmt.Errorf("invalid host: empty user before @")
		}
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return t, fmt.Errorf("invalid host %q: missing ]", s)
		}
		host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if rest := s[end+1:]; rest != "" && !strings.HasPrefix(rest, ":") {
			return t, fmt.Errorf("invalid host %q", s)
		}
	} else if strings.Count(s, ":") == 1 {
		host, port, _ = strings.Cut(s, ":")
	}
	if host == "" {
		return t, fmt.Errorf("invalid host %q: no host name", s)
	}
	t.Host = host
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return t, fmt.Errorf("invalid port %q", port)
		}
		t.Port = p
	}
	return t, nil
}

// Dial connects to target ([user@]host[:port] or an ssh_config alias).
func Dial(ctx context.Context, target string, o Options) (*SSH, error) {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	cfg := loadSSHConfig(o)
	s := &SSH{addr: target, done: make(chan struct{})}
	client, hostKey, closers, err := dialHop(ctx, target, o, cfg, 0)
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	s.client, s.hostKey, s.closers = client, hostKey, closers
	go s.keepalive(15 * time.Second)
	return s, nil
}

// dialHop dials target, through its ProxyJump chain if it has one, and
// returns the fingerprint of target's host key beside the client.
func dialHop(ctx context.Context, target string, o Options, cfg *ssh_config.Config, depth int) (*ssh.Client, string, []io.Closer, error) {
	if depth > 8 {
		return nil, "", nil, usererr.New("ProxyJump chain to %s is too long (a loop?)", target)
	}
	t, err := ParseTarget(target)
	if err != nil {
		return nil, "", nil, usererr.Wrap(err, "cannot connect").WithHint("hosts are written [user@]host[:port]")
	}
	alias := t.Host
	hostName := configGet(cfg, alias, "HostName")
	if hostName == "" {
		hostName = t.Host
	}
	user := firstNonEmpty(t.User, o.User, configGet(cfg, alias, "User"), "root")
	if depth > 0 {
		user = firstNonEmpty(t.User, configGet(cfg, alias, "User"), "root")
	}
	port := t.Port
	if port == 0 && depth == 0 {
		port = o.Port
	}
	if port == 0 {
		if p, err := strconv.Atoi(configGet(cfg, alias, "Port")); err == nil {
			port = p
		}
	}
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(hostName, strconv.Itoa(port))

	var closers []io.Closer
	var raw net.Conn
	jumps := jumpChain(cfg, alias)
	if len(jumps) > 0 {
		// Dial the chain: the first hop directly, each next one through the
		// previous, and the target through the last.
		var via *ssh.Client
		for i, j := range jumps {
			var c *ssh.Client
			var cs []io.Closer
			if i == 0 {
				c, _, cs, err = dialHop(ctx, j, Options{IdentityFiles: o.IdentityFiles, Signers: o.Signers, KnownHostsFiles: o.KnownHostsFiles, TrustFile: o.TrustFile,
					ConfirmHostKey: o.ConfirmHostKey, AcceptNewHostKeys: o.AcceptNewHostKeys, SSHConfigFile: "none", ConnectTimeout: o.ConnectTimeout, Log: o.Log, Home: o.Home}, cfg, depth+1)
			} else {
				c, cs, err = dialThrough(ctx, via, j, o, cfg, depth+1)
			}
			closers = append(closers, cs...)
			if err != nil {
				return nil, "", closers, fmt.Errorf("jump host %s: %w", j, err)
			}
			closers = append(closers, c)
			via = c
		}
		raw, err = dialVia(ctx, via, addr, o.ConnectTimeout)
	} else {
		d := net.Dialer{Timeout: o.ConnectTimeout}
		raw, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, "", closers, usererr.Wrap(err, "cannot reach %s", addr).
			WithHint("check the address, that the host is up, that sshd listens on port %d and no firewall blocks it", port)
	}
	c, hostKey, err := handshake(ctx, raw, target, addr, user, alias, o, cfg)
	if err != nil {
		raw.Close()
		return nil, "", closers, err
	}
	return c, hostKey, closers, nil
}

// dialThrough dials hop j over an existing client.
func dialThrough(ctx context.Context, via *ssh.Client, j string, o Options, cfg *ssh_config.Config, depth int) (*ssh.Client, []io.Closer, error) {
	t, err := ParseTarget(j)
	if err != nil {
		return nil, nil, err
	}
	host := firstNonEmpty(configGet(cfg, t.Host, "HostName"), t.Host)
	port := t.Port
	if port == 0 {
		port, _ = strconv.Atoi(configGet(cfg, t.Host, "Port"))
	}
	if port == 0 {
		port = 22
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	raw, err := dialVia(ctx, via, addr, o.ConnectTimeout)
	if err != nil {
		return nil, nil, usererr.Wrap(err, "cannot reach %s through the jump host", addr)
	}
	user := firstNonEmpty(t.User, configGet(cfg, t.Host, "User"), "root")
	c, _, err := handshake(ctx, raw, j, addr, user, t.Host, o, cfg)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return c, nil, nil
}

func dialVia(ctx context.Context, via *ssh.Client, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return via.DialContext(ctx, "tcp", addr)
}

func handshake(ctx context.Context, raw net.Conn, target, addr, user, alias string, o Options, cfg *ssh_config.Config) (*ssh.Client, string, error) {
	hk, err := newHostKeys(o, configGet(cfg, alias, "StrictHostKeyChecking"))
	if err != nil {
		return nil, "", err
	}
	hk.conn = raw
	auths, tried, closeAgent := authMethods(o, cfg, alias)
	defer closeAgent()
	conf := &ssh.ClientConfig{
		User:              user,
		Auth:              auths,
		HostKeyCallback:   hk.callback(target),
		HostKeyAlgorithms: hk.algorithms(addr),
		Timeout:           o.ConnectTimeout,
	}
	deadline := time.Now().Add(o.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	raw.SetDeadline(deadline)
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, conf)
	if err != nil {
		if hkErr := hk.err(); hkErr != nil {
			return nil, "", hkErr
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, "", usererr.New("%s refused login as %s (tried %s)", addr, user, strings.Join(tried, ", ")).
				WithHint("authorize one of these keys for %s on the host, set ssh.identity_file, or load the key into ssh-agent", user)
		}
		return nil, "", usererr.Wrap(err, "ssh handshake with %s failed", addr)
	}
	raw.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), hk.accepted(), nil
}

// keepalive pings the server so that a dead peer surfaces as an error
// instead of a hang; after 3 missed answers it closes the connection.
func (s *SSH) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		select {
		case err := <-res:
			if err != nil {
				s.client.Close()
				return
			}
			missed = 0
		case <-time.After(every):
			missed++
			if missed >= 3 {
				s.client.Close()
				return
			}
		case <-s.done:
			return
		}
	}
}

// Run runs cmd on the host.
func (s *SSH) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return s.run(ctx, cmd, nil, stdin, stdout, stderr)
}

// terminalModes are those RunTerminal's terminal starts with.
var terminalModes = ssh.TerminalModes{ssh.ECHO: 0, ssh.ICANON: 0}

// RunTerminal runs cmd on a pseudo-terminal of the host.
func (s *SSH) RunTerminal(ctx context.Context, cmd string, t Terminal, stdin io.Reader, stdout io.Writer) error {
	return s.run(ctx, cmd, &t, stdin, stdout, nil)
}

// run runs cmd, on a terminal when t is set.
func (s *SSH) run(ctx context.Context, cmd string, t *Terminal, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := s.client.NewSession()
	if err != nil {
		return usererr.Wrap(err, "%s: connection lost", s.addr)
	}
	defer sess.Close()
	if t != nil {
		if err := sess.RequestPty(t.Term, t.Size.Height, t.Size.Width, terminalModes); err != nil {
			return fmt.Errorf("%s: ask for a terminal: %w", s.addr, err)
		}
	}
	if t != nil && stdin != nil {
		// A terminal's reader blocks until a key is pressed, and the
		// session would wait for it after cmd ends: copy it aside.
		w, err := sess.StdinPipe()
		if err != nil {
			return fmt.Errorf("%s: %w", s.addr, err)
		}
		go func() { io.Copy(w, stdin); w.Close() }()
	} else if stdin != nil {
		sess.Stdin = stdin
	}
	tail := &tailBuffer{max: 4096}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	sess.Stdout = stdout
	sess.Stderr = io.MultiWriter(stderr, tail)
	if err := sess.Start(cmd); err != nil {
		return fmt.Errorf("%s: start %s: %w", s.addr, shorten(cmd, 80), err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	var resize <-chan Size
	if t != nil {
		resize = t.Resize
	}
	for finished := false; !finished; {
		select {
		case err = <-done:
			finished = true
		case size := <-resize:
			_ = sess.WindowChange(size.Height, size.Width) // a lost one is redrawn by the next
		case <-ctx.Done():
			_ = sess.Signal(ssh.SIGTERM)
			sess.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			return ctx.Err()
		}
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Host: s.addr, Cmd: cmd, Code: ee.ExitStatus(), Stderr: tail.String()}
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) || errors.Is(err, io.EOF) {
		return usererr.New("%s: the connection was lost while running %s", s.addr, shorten(cmd, 80)).
			WithHint("the host may have rebooted or dropped the connection; run the command again")
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", s.addr, shorten(cmd, 80), err)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.ToValidUTF8(t.b, nil))
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
