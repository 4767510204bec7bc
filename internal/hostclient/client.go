// Package hostclient is the laptop's end of the host protocol
// (internal/hostproto): a Client runs `hoist host VERB` on one host over
// a transport and reads its answer. internal/host is the other end.
package hostclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
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
	Actor *hostproto.Actor
	// Adopt lets setup take a host set up for no destination into
	// Destination.
	Adopt bool
}

func (c *Client) command(name string) string {
	return transport.Sudo(c.Conn) + transport.Quote(hostproto.BinPath) + " host " + transport.Quote(name)
}

// stdin is the request line for args, then payload if there is one.
func (c *Client) stdin(args any, payload io.Reader) (io.Reader, error) {
	line, err := hostproto.Request{App: c.App, Destination: c.Destination, Adopt: c.Adopt, Client: hostproto.Self(), Actor: c.Actor}.Encode(args)
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
func invoke[A, R any](ctx context.Context, c *Client, v hostproto.Verb[A, R], args A, payload io.Reader) (R, error) {
	return invokeLogged(ctx, c, v, args, payload, nil)
}

// invokeLogged is invoke that also passes what the host logs on stderr
// to progress as it comes, unless progress is nil.
func invokeLogged[A, R any](ctx context.Context, c *Client, v hostproto.Verb[A, R], args A, payload io.Reader, progress io.Writer) (R, error) {
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
	err = c.Conn.Run(ctx, c.command(v.Name), in, &stdout, errw)
	if stdout.Len() > 0 {
		// The host answered: its Response says more than the exit status.
		if derr := hostproto.DecodeResponse(stdout.Bytes(), &result); derr != nil || err == nil {
			var ve *hostproto.VersionError
			if errors.As(derr, &ve) {
				return result, c.versionError(ve)
			}
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
func invokeStream[A any](ctx context.Context, c *Client, v hostproto.StreamVerb[A], args A, stdin io.Reader, stdout, stderr io.Writer) error {
	in, err := c.stdin(args, stdin)
	if err != nil {
		return err
	}
	head := &headWriter{w: stderr}
	err = c.Conn.Run(ctx, c.command(v.Name), in, stdout, head)
	var ee *transport.ExitError
	if errors.As(err, &ee) && ee.Code == hostproto.ExitVersion {
		if ve := hostproto.ParseVersionError(string(head.b)); ve != nil {
			return c.versionError(ve)
		}
	}
	return err
}

// headWriter passes writes on to w and keeps their first bytes, where a
// host's refusal of a stream verb is.
type headWriter struct {
	w io.Writer
	b []byte
}

func (h *headWriter) Write(p []byte) (int, error) {
	if n := min(len(p), 1024-len(h.b)); n > 0 {
		h.b = append(h.b, p[:n]...)
	}
	return h.w.Write(p)
}

// terminalError is err of a verb run on a terminal, where the host's
// stderr is the terminal's: a refusal of this hoist's protocol is said
// without the host's version, which the terminal showed.
func (c *Client) terminalError(err error) error {
	var ee *transport.ExitError
	if errors.As(err, &ee) && ee.Code == hostproto.ExitVersion {
		return usererr.Wrap(err, "hoist on %s speaks another protocol than this hoist (%s, protocol %d)", c.Conn.Addr(), hostproto.Hoist, hostproto.Protocol).
			WithHint("run hoist setup to upgrade the hoist on %s to this one", c.Conn.Addr())
	}
	return err
}

// versionError is the user's error for a host whose hoist speaks another
// protocol than this one: it names both and what to run.
func (c *Client) versionError(ve *hostproto.VersionError) error {
	e := usererr.Wrap(ve, "%s refuses this hoist's host protocol", c.Conn.Addr())
	if ve.Host.Protocol > ve.Client.Protocol {
		return e.WithHint("the host's hoist is the newer: use hoist %s here, or run hoist setup to put this hoist (%s) back on %s",
			ve.Host.Hoist, ve.Client.Hoist, c.Conn.Addr())
	}
	return e.WithHint("run hoist setup to upgrade the hoist on %s to this one (%s)", c.Conn.Addr(), ve.Client.Hoist)
}

func (c *Client) runError(err error, stderr string) error {
	if msg := strings.TrimSpace(stderr); msg != "" && !strings.Contains(err.Error(), msg) {
		err = fmt.Errorf("%w: %s", err, hostproto.Truncate(msg, 2000))
	}
	var ee *transport.ExitError
	switch {
	case errors.As(err, &ee) && (ee.Code == 127 || strings.Contains(stderr, hostproto.BinPath+": command not found")):
		// 127 from a shell; sudo says "command not found" and exits 1.
		return usererr.Wrap(notInstalled{err}, "hoist is not installed on %s", c.Conn.Addr()).
			WithHint("run hoist setup (hoist provision does it for the hosts it made)")
	case errors.As(err, &ee) && ee.Code == hostproto.ExitUsage:
		// Only a hoist that speaks another protocol gets its usage wrong:
		// one from before the version handshake (hostproto.Protocol).
		return usererr.Wrap(err, "hoist on %s does not understand this hoist's (%s) request: it is an older or newer hoist", c.Conn.Addr(), hostproto.Hoist).
			WithHint("put this hoist on the host: run hoist setup, which upgrades the host's hoist to %s", hostproto.Hoist)
	}
	return err
}

// ErrNotInstalled is the cause of an error from a host without hoist.
var ErrNotInstalled = errors.New("hoist is not installed")

// notInstalled is a command's failure on a host without hoist: it reads
// as the command's error and is ErrNotInstalled.
type notInstalled struct{ err error }

func (n notInstalled) Error() string   { return n.err.Error() }
func (n notInstalled) Unwrap() []error { return []error{n.err, ErrNotInstalled} }

// Setup prepares the host for the app.
func (c *Client) Setup(ctx context.Context, s *hostproto.Spec) (hostproto.HostFacts, error) {
	return invoke(ctx, c, hostproto.SetupVerb, *s, nil)
}

// ShipIndex sends release m's index, encoded by EncodeDelta from the
// index whose sum is base ("" for none), and returns what the host holds
// and needs of the release.
func (c *Client) ShipIndex(ctx context.Context, m *release.Manifest, base string, delta []byte) (hostproto.ShipState, error) {
	return invoke(ctx, c, hostproto.ShipIndexVerb, hostproto.ShipIndexArgs{Manifest: *m, Base: base}, bytes.NewReader(delta))
}

// Receive sends a transfer (RecordWriter's) of release m's objects,
// read from r; the host assembles the release when it is complete.
func (c *Client) Receive(ctx context.Context, m *release.Manifest, r io.Reader) (hostproto.Received, error) {
	return invoke(ctx, c, hostproto.ReceiveVerb, *m, r)
}

// FetchFromRelay has the host fetch what it lacks of release m from a
// relay another host serves, then assemble it.
func (c *Client) FetchFromRelay(ctx context.Context, m *release.Manifest, offer hostproto.RelayOffer, token string) (hostproto.Received, error) {
	return invoke(ctx, c, hostproto.RelayFetchVerb, hostproto.RelayFetchArgs{Manifest: *m, Addr: offer.Addr, Fingerprint: offer.Fingerprint, Token: token}, nil)
}

// FetchFromStore has the host fetch what it lacks of the release the
// signed record names from the app's store, then assemble it; with a
// nil record, the store's current record.
func (c *Client) FetchFromStore(ctx context.Context, record []byte) (hostproto.StoreFetched, error) {
	return invoke(ctx, c, hostproto.StoreFetchVerb, hostproto.StoreFetchArgs{Record: record}, nil)
}

// Relay is a relay-serve running on a host.
type Relay struct {
	Offer hostproto.RelayOffer
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
	args := hostproto.RelayServeArgs{ID: id, Token: token, Bind: bind, Life: int(life / time.Second)}
	return serve(ctx, c, hostproto.RelayServeVerb, args, log, "relay", "start relay")
}

// serve runs stream verb v, which stays up serving until its stdin
// closes and first prints its offer as one JSON line; it ends the verb
// again if the offer does not come. server names the verb in the error
// it ends with, start in the error of a start that failed.
func serve[A any](ctx context.Context, c *Client, v hostproto.StreamVerb[A], args A, log io.Writer, server, start string) (*Relay, error) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	r := &Relay{stop: stdinW, done: make(chan error, 1)}
	go func() {
		err := invokeStream(ctx, c, v, args, stdinR, outW, log)
		outW.CloseWithError(fmt.Errorf("%s on %s ended: %w", server, c.Conn.Addr(), orEOF(err)))
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
		return nil, fmt.Errorf("%s on %s: %w", start, c.Conn.Addr(), err)
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
func (c *Client) Lock(ctx context.Context, lk hostproto.Lock) error {
	return c.TakeOverLock(ctx, lk, "")
}

// TakeOverLock takes the deploy lock, replacing one held by stale (a
// holder known to be gone) when it is still the one that holds it.
func (c *Client) TakeOverLock(ctx context.Context, lk hostproto.Lock, stale string) error {
	_, err := invoke(ctx, c, hostproto.LockVerb, hostproto.LockArgs{Holder: lk.Holder, Op: lk.Op, Machine: lk.Machine, PID: lk.PID, Started: lk.Started, TakeOver: stale}, nil)
	return err
}

// Unlock releases the deploy lock held by holder, or any holder if force.
func (c *Client) Unlock(ctx context.Context, holder string, force bool) error {
	_, err := invoke(ctx, c, hostproto.UnlockVerb, hostproto.UnlockArgs{Holder: holder, Force: force}, nil)
	return err
}

// SetEnv replaces the app's secret environment file on the host.
func (c *Client) SetEnv(ctx context.Context, content []byte) error {
	_, err := invoke(ctx, c, hostproto.EnvVerb, content, nil)
	return err
}

// Activate makes release id current behind its health check; op says
// what for (deploy, rollback) in the hosts' audit trail. What the host
// does is written to log as it happens, unless log is nil.
func (c *Client) Activate(ctx context.Context, s *hostproto.Spec, id, op string, log io.Writer) error {
	_, err := invokeLogged(ctx, c, hostproto.ActivateVerb, hostproto.ActivateArgs{Spec: *s, ID: id, Op: op}, nil, log)
	return err
}

// Restart starts the current release again with the environment as it
// is now, and returns its id; the host's log of it goes to log.
func (c *Client) Restart(ctx context.Context, s *hostproto.Spec, log io.Writer) (string, error) {
	return invokeLogged(ctx, c, hostproto.RestartVerb, *s, nil, log)
}

// Check asks the current release for its health once and returns its id.
func (c *Client) Check(ctx context.Context, s *hostproto.Spec) (string, error) {
	return invoke(ctx, c, hostproto.CheckVerb, *s, nil)
}

// Status reads the app's state.
func (c *Client) Status(ctx context.Context) (*hostproto.Status, error) {
	return invoke(ctx, c, hostproto.StatusVerb, hostproto.None{}, nil)
}

// Releases lists the releases on the host.
func (c *Client) Releases(ctx context.Context) ([]hostproto.ReleaseInfo, error) {
	return invoke(ctx, c, hostproto.ReleasesVerb, hostproto.None{}, nil)
}

// Previous returns the release a rollback without an id goes to.
func (c *Client) Previous(ctx context.Context) (string, error) {
	return invoke(ctx, c, hostproto.PreviousVerb, hostproto.None{}, nil)
}

// ProxyStatus lists the routes of the host's edge proxy.
func (c *Client) ProxyStatus(ctx context.Context) ([]hostproto.RouteStatus, error) {
	return invoke(ctx, c, hostproto.ProxyStatusVerb, hostproto.None{}, nil)
}

// ProxyRoot returns the root certificate (PEM) of the host's proxy's
// internal CA.
func (c *Client) ProxyRoot(ctx context.Context) (string, error) {
	return invoke(ctx, c, hostproto.ProxyRootVerb, hostproto.None{}, nil)
}

// Exec runs argv in the current release with the app's user and env;
// the streams are the remote command's own (no Response envelope).
func (c *Client) Exec(ctx context.Context, s *hostproto.Spec, argv []string, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.ExecVerb, hostproto.ExecArgs{Spec: *s, Argv: argv}, nil, stdout, stderr)
}

// ExecTerminal runs argv as Exec does, on a terminal of the host (for
// bin/APP remote, a shell): stdin is what is typed, stdout what the
// terminal shows.
func (c *Client) ExecTerminal(ctx context.Context, s *hostproto.Spec, argv []string, t transport.Terminal, stdin io.Reader, stdout io.Writer) error {
	tc, ok := c.Conn.(transport.TerminalConn)
	if !ok {
		return fmt.Errorf("%s: the connection cannot give a terminal", c.Conn.Addr())
	}
	in, err := c.stdin(hostproto.ExecArgs{Spec: *s, Argv: argv, Terminal: true}, stdin)
	if err != nil {
		return err
	}
	return c.terminalError(tc.RunTerminal(ctx, c.command(hostproto.ExecVerb.Name), t, in, stdout))
}

// Logs streams the app's journal.
func (c *Client) Logs(ctx context.Context, lines int, follow bool, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.LogsVerb, hostproto.LogsArgs{Lines: lines, Follow: follow}, nil, stdout, stderr)
}

// Maintenance turns the app's maintenance mode on, with message and
// retryAfter, or off.
func (c *Client) Maintenance(ctx context.Context, on bool, message string, retryAfter time.Duration) error {
	_, err := invoke(ctx, c, hostproto.MaintenanceVerb, hostproto.MaintenanceArgs{On: on, Message: message, RetryAfter: retryAfter}, nil)
	return err
}

// Audit returns the newest lines of the app's audit trail (0: all).
func (c *Client) Audit(ctx context.Context, lines int) ([]hostproto.AuditEntry, error) {
	return invoke(ctx, c, hostproto.AuditVerb, hostproto.AuditArgs{Lines: lines}, nil)
}

// SetupAccessory installs, configures and starts an accessory on the
// host and returns how the app reaches it (a secret: never print it).
func (c *Client) SetupAccessory(ctx context.Context, s *hostproto.AccessorySpec) (hostproto.AccessoryConnection, error) {
	return invoke(ctx, c, hostproto.AccessorySetupVerb, *s, nil)
}

// SetAccessoriesEnv replaces the file of the accessories' URLs that the
// app's units read.
func (c *Client) SetAccessoriesEnv(ctx context.Context, content []byte) error {
	_, err := invoke(ctx, c, hostproto.AccessoryEnvVerb, content, nil)
	return err
}

// AccessoryStatus reports accessory name, or all the app's on the host
// for "".
func (c *Client) AccessoryStatus(ctx context.Context, name string) ([]hostproto.AccessoryStatus, error) {
	return invoke(ctx, c, hostproto.AccessoryStatusVerb, hostproto.AccessoryArgs{Name: name}, nil)
}

// RestartAccessory restarts an accessory's unit.
func (c *Client) RestartAccessory(ctx context.Context, name string) error {
	_, err := invoke(ctx, c, hostproto.AccessoryRestartVerb, hostproto.AccessoryArgs{Name: name}, nil)
	return err
}

// BackupAccessory makes a backup of an accessory now.
func (c *Client) BackupAccessory(ctx context.Context, name string) (hostproto.BackupInfo, error) {
	return invoke(ctx, c, hostproto.AccessoryBackupVerb, hostproto.AccessoryArgs{Name: name}, nil)
}

// AccessoryBackups lists an accessory's backups, oldest first.
func (c *Client) AccessoryBackups(ctx context.Context, name string) ([]hostproto.BackupInfo, error) {
	return invoke(ctx, c, hostproto.AccessoryBackupsVerb, hostproto.AccessoryArgs{Name: name}, nil)
}

// SendBackup uploads a backup (size bytes from r) to the accessory's
// backups, where the host keeps it once whole and verified.
func (c *Client) SendBackup(ctx context.Context, name, file string, size int64, r io.Reader) (hostproto.BackupInfo, error) {
	return invoke(ctx, c, hostproto.AccessoryReceiveVerb, hostproto.AccessoryFileArgs{Name: name, File: file, Size: size}, r)
}

// RestoreAccessory restores backup file into the accessory's database
// and returns the backup made of what it held ("" when it held
// nothing); without confirm, a database holding data is refused with
// an *hostproto.ConfirmError.
func (c *Client) RestoreAccessory(ctx context.Context, name, file string, confirm bool) (string, error) {
	return invoke(ctx, c, hostproto.AccessoryRestoreVerb, hostproto.AccessoryFileArgs{Name: name, File: file, Confirm: confirm}, nil)
}

// VerifyBackup runs a verify drill of backup file (the newest for "").
func (c *Client) VerifyBackup(ctx context.Context, name, file string) (hostproto.Verification, error) {
	return invoke(ctx, c, hostproto.AccessoryVerifyVerb, hostproto.AccessoryVerifyArgs{Name: name, File: file}, nil)
}

// ImportDump uploads an ordinary pg_dump (size bytes from r), which the
// host keeps as an upload that restores like a backup.
func (c *Client) ImportDump(ctx context.Context, name, file string, size int64, r io.Reader) (hostproto.BackupInfo, error) {
	return invoke(ctx, c, hostproto.AccessoryImportVerb, hostproto.AccessoryImportArgs{Name: name, File: file, Size: size}, r)
}

// OffsiteBackups lists the backups in the accessory's bucket, oldest
// first.
func (c *Client) OffsiteBackups(ctx context.Context, name string) ([]hostproto.BackupInfo, error) {
	return invoke(ctx, c, hostproto.AccessoryOffsiteListVerb, hostproto.AccessoryArgs{Name: name}, nil)
}

// FetchOffsite writes object file of the accessory's bucket, still
// encrypted, to w.
func (c *Client) FetchOffsite(ctx context.Context, name, file string, w io.Writer, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.AccessoryOffsiteFetchVerb, hostproto.AccessoryOffsiteArgs{Name: name, File: file}, nil, w, stderr)
}

// FetchBackup writes backup file of the accessory to w.
func (c *Client) FetchBackup(ctx context.Context, name, file string, w io.Writer, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.AccessoryFetchVerb, hostproto.AccessoryFileArgs{Name: name, File: file}, nil, w, stderr)
}

// AccessoryLogs streams the journal of an accessory's unit.
func (c *Client) AccessoryLogs(ctx context.Context, name string, lines int, follow bool, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.AccessoryLogsVerb, hostproto.AccessoryLogsArgs{Name: name, Lines: lines, Follow: follow}, nil, stdout, stderr)
}

// Psql runs psql with args on accessory name's database as the app's
// role; its streams are psql's own, and a *transport.ExitError carries
// psql's exit status.
func (c *Client) Psql(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return invokeStream(ctx, c, hostproto.AccessoryPsqlVerb, hostproto.AccessoryPsqlArgs{Name: name, Args: args}, stdin, stdout, stderr)
}

// PsqlTerminal runs psql as Psql does, on a terminal of the host: stdin
// is what is typed, stdout what the terminal shows.
func (c *Client) PsqlTerminal(ctx context.Context, name string, args []string, t transport.Terminal, stdin io.Reader, stdout io.Writer) error {
	tc, ok := c.Conn.(transport.TerminalConn)
	if !ok {
		return fmt.Errorf("%s: the connection cannot give a terminal", c.Conn.Addr())
	}
	in, err := c.stdin(hostproto.AccessoryPsqlArgs{Name: name, Args: args, Terminal: true}, stdin)
	if err != nil {
		return err
	}
	return c.terminalError(tc.RunTerminal(ctx, c.command(hostproto.AccessoryPsqlVerb.Name), t, in, stdout))
}

// Schedule installs tasks, run with spec's port and plain environment,
// on the host, and removes the app's other tasks there.
func (c *Client) Schedule(ctx context.Context, s *hostproto.Spec, tasks []hostproto.Task) (hostproto.ScheduleResult, error) {
	return invoke(ctx, c, hostproto.ScheduleVerb, hostproto.ScheduleArgs{Port: s.Port, Env: s.Env, Tasks: tasks}, nil)
}

// CheckSchedule has the host's systemd read the tasks' calendars; the
// result's Invalid names those it cannot. Nothing changes on the host.
func (c *Client) CheckSchedule(ctx context.Context, s *hostproto.Spec, tasks []hostproto.Task) (hostproto.ScheduleResult, error) {
	return invoke(ctx, c, hostproto.ScheduleVerb, hostproto.ScheduleArgs{Port: s.Port, Env: s.Env, Tasks: tasks, Check: true}, nil)
}

// ServeBinary has the host serve its hoist, whose sha256 is sum, to its
// peers on bind for at most life: they fetch it with the token. Its log
// lines go to log.
func (c *Client) ServeBinary(ctx context.Context, sum, token, bind string, life time.Duration, log io.Writer) (*Relay, error) {
	args := hostproto.BinaryServeArgs{SHA256: sum, Token: token, Bind: bind, Life: int(life / time.Second)}
	return serve(ctx, c, hostproto.BinaryServeVerb, args, log, "hoist server", "serve hoist")
}

// SetupDone records on the host that setup with fingerprint went
// through there.
func (c *Client) SetupDone(ctx context.Context, fingerprint string) error {
	_, err := invoke(ctx, c, hostproto.SetupDoneVerb, fingerprint, nil)
	return err
}
