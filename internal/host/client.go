package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Client calls `hoist host` verbs on one host over a transport. A login
// that is not root runs them with `sudo -n`.
type Client struct {
	Conn transport.Conn
	App  string
	// Destination is the app's destination ("" for none): a host set up
	// for another refuses every request.
	Destination string
	// Actor is who asks, for the hosts' audit trail.
	Actor *Actor
}

func (c *Client) command(name string) string {
	return transport.Sudo(c.Conn) + transport.Quote(BinPath) + " host " + transport.Quote(name)
}

// stdin is the request line for args, then payload if there is one.
func (c *Client) stdin(args any, payload io.Reader) (io.Reader, error) {
	line, err := request{App: c.App, Destination: c.Destination, Actor: c.Actor}.encode(args)
	if err != nil {
		return nil, err
	}
	if payload == nil {
		return bytes.NewReader(line), nil
	}
	return io.MultiReader(bytes.NewReader(line), payload), nil
}

// invoke runs verb v with args on the host, payload after them on stdin,
// and returns its result.
func invoke[A, R any](ctx context.Context, c *Client, v verb[A, R], args A, payload io.Reader) (R, error) {
	return invokeLogged(ctx, c, v, args, payload, nil)
}

// invokeLogged is invoke that also passes what the host logs on stderr
// to progress as it comes, unless progress is nil.
func invokeLogged[A, R any](ctx context.Context, c *Client, v verb[A, R], args A, payload io.Reader, progress io.Writer) (R, error) {
	var result R
	in, err := c.stdin(args, payload)
	if err != nil {
		return result, err
	}
	var stdout, stderr bytes.Buffer
	var errw io.Writer = &stderr
	if progress != nil {
		errw = io.MultiWriter(&stderr, progress)
	}
	err = c.Conn.Run(ctx, c.command(v.name), in, &stdout, errw)
	if stdout.Len() > 0 {
		// The host answered: its Response says more than the exit status.
		if derr := decodeResponse(stdout.Bytes(), &result); derr != nil || err == nil {
			return result, derr
		}
	}
	if err != nil {
		return result, c.runError(err, stderr.String())
	}
	return result, nil
}

// invokeStream runs stream verb v: its output is the command's own, and
// a *transport.ExitError carries the command's exit status.
func invokeStream[A any](ctx context.Context, c *Client, v streamVerb[A], args A, stdin io.Reader, stdout, stderr io.Writer) error {
	in, err := c.stdin(args, stdin)
	if err != nil {
		return err
	}
	return c.Conn.Run(ctx, c.command(v.name), in, stdout, stderr)
}

func (c *Client) runError(err error, stderr string) error {
	if msg := strings.TrimSpace(stderr); msg != "" && !strings.Contains(err.Error(), msg) {
		err = fmt.Errorf("%w: %s", err, truncate(msg, 2000))
	}
	var ee *transport.ExitError
	switch {
	case errors.As(err, &ee) && ee.Code == 127:
		return fmt.Errorf("hoist is not installed on %s: %w", c.Conn.Addr(), err)
	case errors.As(err, &ee) && ee.Code == exitUsage:
		// Only a hoist that speaks another protocol gets its usage wrong.
		return usererr.Wrap(err, "hoist on %s does not understand this hoist's request", c.Conn.Addr()).
			WithHint("put this hoist on the host: run hoist setup")
	}
	return err
}

// Setup prepares the host for the app.
func (c *Client) Setup(ctx context.Context, s *Spec) (HostFacts, error) {
	return invoke(ctx, c, setupVerb, *s, nil)
}

// ShipIndex sends release m's index, encoded by EncodeDelta from the
// index whose sum is base ("" for none), and returns what the host holds
// and needs of the release.
func (c *Client) ShipIndex(ctx context.Context, m *release.Manifest, base string, delta []byte) (ShipState, error) {
	return invoke(ctx, c, shipIndexVerb, shipIndexArgs{Manifest: *m, Base: base}, bytes.NewReader(delta))
}

// Receive sends a transfer (RecordWriter's) of release m's objects,
// read from r; the host assembles the release when it is complete.
func (c *Client) Receive(ctx context.Context, m *release.Manifest, r io.Reader) (Received, error) {
	return invoke(ctx, c, receiveVerb, *m, r)
}

// FetchFromRelay has the host fetch what it lacks of release m from a
// relay another host serves, then assemble it.
func (c *Client) FetchFromRelay(ctx context.Context, m *release.Manifest, offer RelayOffer, token string) (Received, error) {
	return invoke(ctx, c, relayFetchVerb, relayFetchArgs{Manifest: *m, Addr: offer.Addr, Fingerprint: offer.Fingerprint, Token: token}, nil)
}

// Relay is a relay-serve running on a host.
type Relay struct {
	Offer RelayOffer
	stop  *io.PipeWriter
	done  chan error
}

// Stop ends the relay and waits for it a while: a relay host that lost
// its power answers nothing until the SSH keepalive gives up on it.
func (r *Relay) Stop() error {
	r.stop.Close()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the relay did not stop within 10s")
	}
}

// ServeRelay starts a relay of release id on the host, listening on
// bind (an address of the host that the others reach) for at most life;
// its log lines go to log.
func (c *Client) ServeRelay(ctx context.Context, id, token, bind string, life time.Duration, log io.Writer) (*Relay, error) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	r := &Relay{stop: stdinW, done: make(chan error, 1)}
	args := relayServeArgs{ID: id, Token: token, Bind: bind, Life: int(life / time.Second)}
	go func() {
		err := invokeStream(ctx, c, relayServeVerb, args, stdinR, outW, log)
		outW.CloseWithError(fmt.Errorf("relay on %s ended: %w", c.Conn.Addr(), orEOF(err)))
		r.done <- err
	}()
	br := bufio.NewReader(outR)
	line, err := br.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &r.Offer)
	}
	if err != nil {
		stdinW.Close()
		<-r.done
		return nil, fmt.Errorf("start relay on %s: %w", c.Conn.Addr(), err)
	}
	go io.Copy(io.Discard, br)
	return r, nil
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// SSHAddr is the address of the host that this SSH connection reached,
// as the host sees it (SSH_CONNECTION): where its peers reach it too.
func SSHAddr(ctx context.Context, conn transport.Conn) (string, error) {
	var out bytes.Buffer
	if err := conn.Run(ctx, "echo $SSH_CONNECTION", nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("read address of %s: %w", conn.Addr(), err)
	}
	f := strings.Fields(out.String())
	if len(f) != 4 {
		return "", fmt.Errorf("read address of %s: SSH_CONNECTION is %q", conn.Addr(), out.String())
	}
	return f[2], nil
}

// Lock takes the deploy lock.
func (c *Client) Lock(ctx context.Context, lk Lock) error {
	_, err := invoke(ctx, c, lockVerb, lockArgs{Holder: lk.Holder, Op: lk.Op}, nil)
	return err
}

// Unlock releases the deploy lock held by holder, or any holder if force.
func (c *Client) Unlock(ctx context.Context, holder string, force bool) error {
	_, err := invoke(ctx, c, unlockVerb, unlockArgs{Holder: holder, Force: force}, nil)
	return err
}

// SetEnv replaces the app's secret environment file on the host.
func (c *Client) SetEnv(ctx context.Context, content []byte) error {
	_, err := invoke(ctx, c, envVerb, content, nil)
	return err
}

// Activate makes release id current behind its health check; op says
// what for (deploy, rollback) in the hosts' audit trail. What the host
// does is written to log as it happens, unless log is nil.
func (c *Client) Activate(ctx context.Context, s *Spec, id, op string, log io.Writer) error {
	_, err := invokeLogged(ctx, c, activateVerb, activateArgs{Spec: *s, ID: id, Op: op}, nil, log)
	return err
}

// Check asks the current release for its health once and returns its id.
func (c *Client) Check(ctx context.Context, s *Spec) (string, error) {
	return invoke(ctx, c, checkVerb, *s, nil)
}

// Status reads the app's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return invoke(ctx, c, statusVerb, none{}, nil)
}

// Releases lists the releases on the host.
func (c *Client) Releases(ctx context.Context) ([]ReleaseInfo, error) {
	return invoke(ctx, c, releasesVerb, none{}, nil)
}

// Previous returns the release a rollback without an id goes to.
func (c *Client) Previous(ctx context.Context) (string, error) {
	return invoke(ctx, c, previousVerb, none{}, nil)
}

// ProxyStatus lists the routes of the host's edge proxy.
func (c *Client) ProxyStatus(ctx context.Context) ([]proxy.RouteStatus, error) {
	return invoke(ctx, c, proxyStatusVerb, none{}, nil)
}

// ProxyRoot returns the root certificate (PEM) of the host's proxy's
// internal CA.
func (c *Client) ProxyRoot(ctx context.Context) (string, error) {
	return invoke(ctx, c, proxyRootVerb, none{}, nil)
}

// Exec runs argv in the current release with the app's user and env;
// the streams are the remote command's own (no Response envelope).
func (c *Client) Exec(ctx context.Context, s *Spec, argv []string, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, execVerb, execArgs{Spec: *s, Argv: argv}, nil, stdout, stderr)
}

// ExecTerminal runs argv as Exec does, on a terminal of the host (for
// bin/APP remote, a shell): stdin is what is typed, stdout what the
// terminal shows.
func (c *Client) ExecTerminal(ctx context.Context, s *Spec, argv []string, t transport.Terminal, stdin io.Reader, stdout io.Writer) error {
	tc, ok := c.Conn.(transport.TerminalConn)
	if !ok {
		return fmt.Errorf("%s: the connection cannot give a terminal", c.Conn.Addr())
	}
	in, err := c.stdin(execArgs{Spec: *s, Argv: argv, Terminal: true}, stdin)
	if err != nil {
		return err
	}
	return tc.RunTerminal(ctx, c.command(execVerb.name), t, in, stdout)
}

// Logs streams the app's journal.
func (c *Client) Logs(ctx context.Context, lines int, follow bool, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, logsVerb, logsArgs{Lines: lines, Follow: follow}, nil, stdout, stderr)
}

// Maintenance turns the app's maintenance mode on, with message and
// retryAfter, or off.
func (c *Client) Maintenance(ctx context.Context, on bool, message string, retryAfter time.Duration) error {
	_, err := invoke(ctx, c, maintenanceVerb, maintenanceArgs{On: on, Message: message, RetryAfter: retryAfter}, nil)
	return err
}

// Audit returns the newest lines of the app's audit trail (0: all).
func (c *Client) Audit(ctx context.Context, lines int) ([]AuditEntry, error) {
	return invoke(ctx, c, auditVerb, auditArgs{Lines: lines}, nil)
}

// SetupAccessory installs, configures and starts an accessory on the
// host and returns how the app reaches it (a secret: never print it).
func (c *Client) SetupAccessory(ctx context.Context, s *accessory.Spec) (accessory.Connection, error) {
	return invoke(ctx, c, accessorySetupVerb, *s, nil)
}

// SetAccessoriesEnv replaces the file of the accessories' URLs that the
// app's units read.
func (c *Client) SetAccessoriesEnv(ctx context.Context, content []byte) error {
	_, err := invoke(ctx, c, accessoryEnvVerb, content, nil)
	return err
}

// AccessoryStatus reports accessory name, or all the app's on the host
// for "".
func (c *Client) AccessoryStatus(ctx context.Context, name string) ([]accessory.Status, error) {
	return invoke(ctx, c, accessoryStatusVerb, accessoryArgs{Name: name}, nil)
}

// RestartAccessory restarts an accessory's unit.
func (c *Client) RestartAccessory(ctx context.Context, name string) error {
	_, err := invoke(ctx, c, accessoryRestartVerb, accessoryArgs{Name: name}, nil)
	return err
}

// BackupAccessory makes a backup of an accessory now.
func (c *Client) BackupAccessory(ctx context.Context, name string) (accessory.BackupInfo, error) {
	return invoke(ctx, c, accessoryBackupVerb, accessoryArgs{Name: name}, nil)
}

// AccessoryBackups lists an accessory's backups, oldest first.
func (c *Client) AccessoryBackups(ctx context.Context, name string) ([]accessory.BackupInfo, error) {
	return invoke(ctx, c, accessoryBackupsVerb, accessoryArgs{Name: name}, nil)
}

// SendBackup uploads a backup (size bytes from r) to the accessory's
// backups, where the host keeps it once whole and verified.
func (c *Client) SendBackup(ctx context.Context, name, file string, size int64, r io.Reader) (accessory.BackupInfo, error) {
	return invoke(ctx, c, accessoryReceiveVerb, accessoryFileArgs{Name: name, File: file, Size: size}, r)
}

// RestoreAccessory restores backup file into the accessory's database;
// without confirm, a database holding data is refused with an
// *accessory.ConfirmError.
func (c *Client) RestoreAccessory(ctx context.Context, name, file string, confirm bool) error {
	_, err := invoke(ctx, c, accessoryRestoreVerb, accessoryFileArgs{Name: name, File: file, Confirm: confirm}, nil)
	return err
}

// FetchBackup writes backup file of the accessory to w.
func (c *Client) FetchBackup(ctx context.Context, name, file string, w io.Writer, stderr io.Writer) error {
	return invokeStream(ctx, c, accessoryFetchVerb, accessoryFileArgs{Name: name, File: file}, nil, w, stderr)
}

// AccessoryLogs streams the journal of an accessory's unit.
func (c *Client) AccessoryLogs(ctx context.Context, name string, lines int, follow bool, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, accessoryLogsVerb, accessoryLogsArgs{Name: name, Lines: lines, Follow: follow}, nil, stdout, stderr)
}

// InstallBinary puts the hoist binary at path local onto the host at
// BinPath, atomically, unless the host already has the same bytes.
func (c *Client) InstallBinary(ctx context.Context, local string) (bool, error) {
	data, err := os.ReadFile(local)
	if err != nil {
		return false, fmt.Errorf("read hoist binary: %w", err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	var out bytes.Buffer
	_ = c.Conn.Run(ctx, transport.Sudo(c.Conn)+"sha256sum "+BinPath+" 2>/dev/null || true", nil, &out, io.Discard)
	if strings.HasPrefix(out.String(), want) {
		return false, nil
	}
	tmp := BinPath + ".new"
	script := fmt.Sprintf("set -e; umask 022; cat > %[1]s; chmod 755 %[1]s; sync %[1]s; mv -f %[1]s %[2]s", tmp, BinPath)
	if sudo := transport.Sudo(c.Conn); sudo != "" {
		script = sudo + "sh -c " + transport.Quote(script)
	}
	if err := c.Conn.Run(ctx, script, bytes.NewReader(data), io.Discard, io.Discard); err != nil {
		return false, fmt.Errorf("install hoist on %s: %w", c.Conn.Addr(), err)
	}
	return true, nil
}

// Platform returns the host's `uname -sm`, lowercased, as GOOS/GOARCH.
func Platform(ctx context.Context, conn transport.Conn) (string, error) {
	var out bytes.Buffer
	if err := conn.Run(ctx, "uname -sm", nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("read platform of %s: %w", conn.Addr(), err)
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		return "", fmt.Errorf("read platform of %s: unexpected uname output %q", conn.Addr(), out.String())
	}
	arch := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "riscv64": "riscv64"}[f[1]]
	if arch == "" {
		arch = f[1]
	}
	return strings.ToLower(f[0]) + "/" + arch, nil
}
