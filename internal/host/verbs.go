package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/systemd"
)

// The verbs of the host protocol (proto.go), each with its arguments,
// its result and what the host does.

type shipIndexArgs struct {
	Manifest release.Manifest `json:"manifest"`
	// Base is the index sum of the kept release whose index the payload
	// is a delta from; "" for none.
	Base string `json:"base,omitempty"`
}

type lockArgs struct {
	Holder string `json:"holder"`
	Op     string `json:"op,omitempty"`
}

type unlockArgs struct {
	Holder string `json:"holder,omitempty"`
	Force  bool   `json:"force,omitempty"` // whoever holds it
}

type activateArgs struct {
	Spec Spec   `json:"spec"`
	ID   string `json:"id"`
	// Op is what the activation is for the audit trail: deploy or
	// rollback.
	Op string `json:"op"`
}

func (a *activateArgs) Validate() error {
	if !release.ValidID(a.ID) {
		return fmt.Errorf("invalid release id %q", a.ID)
	}
	return a.Spec.Validate()
}

type execArgs struct {
	Spec Spec     `json:"spec"`
	Argv []string `json:"argv"`
	// Terminal runs the command on the terminal the host was called on.
	Terminal bool `json:"terminal,omitempty"`
}

func (a *execArgs) Validate() error {
	if len(a.Argv) == 0 {
		return fmt.Errorf("exec: no command")
	}
	return a.Spec.Validate()
}

type logsArgs struct {
	Lines  int  `json:"lines"`
	Follow bool `json:"follow,omitempty"`
}

// accessoryArgs name an accessory of the app; "" means all of them
// where a verb takes that.
type accessoryArgs struct {
	Name string `json:"name,omitempty"`
}

func (a *accessoryArgs) Validate() error {
	if a.Name != "" && !accessory.ValidName(a.Name) {
		return fmt.Errorf("invalid accessory name %q", a.Name)
	}
	return nil
}

// accessoryFileArgs name a backup of an accessory: the one to fetch,
// receive (Size bytes follow the request) or restore (Confirm lets it
// replace a database that holds data).
type accessoryFileArgs struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Size    int64  `json:"size,omitempty"`
	Confirm bool   `json:"confirm,omitempty"`
}

func (a *accessoryFileArgs) Validate() error {
	if !accessory.ValidName(a.Name) || !accessory.ValidBackupFile(a.File) || a.Size < 0 {
		return fmt.Errorf("invalid backup %q of accessory %q", a.File, a.Name)
	}
	return nil
}

type accessoryLogsArgs struct {
	Name   string `json:"name"`
	Lines  int    `json:"lines"`
	Follow bool   `json:"follow,omitempty"`
}

// maintenanceArgs turn maintenance on, with its message and
// Retry-After, or off.
type maintenanceArgs struct {
	On         bool          `json:"on"`
	Message    string        `json:"message,omitempty"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

type auditArgs struct {
	// Lines is how many of the newest lines; 0 for all.
	Lines int `json:"lines,omitempty"`
}

var (
	setupVerb = verb[Spec, HostFacts]{"setup", func(ctx context.Context, c *call, s Spec) (HostFacts, error) {
		err := recordDestination(c.layout, c.destination)
		var facts HostFacts
		if err == nil {
			facts, err = Setup(ctx, c.layout, &s)
		}
		c.audit("setup", "", "", err)
		return facts, err
	}}
	// shipIndexVerb takes the release's index on stdin.
	shipIndexVerb = verb[shipIndexArgs, ShipState]{"ship-index", func(_ context.Context, c *call, a shipIndexArgs) (ShipState, error) {
		return ShipIndex(c.layout, &a.Manifest, a.Base, c.stdin)
	}}
	// receiveVerb takes a transfer of the release's objects on stdin.
	receiveVerb = verb[release.Manifest, Received]{"receive", func(_ context.Context, c *call, m release.Manifest) (Received, error) {
		return ReceiveTransfer(c.layout, &m, c.stdin)
	}}
	// relayServeVerb prints a RelayOffer, then serves until stdin ends.
	relayServeVerb = streamVerb[relayServeArgs]{"relay-serve", func(ctx context.Context, c *call, a relayServeArgs) (int, error) {
		return 0, ServeRelay(ctx, c.layout, a, c.stdin, c.stdout, c.stderr)
	}}
	relayFetchVerb = verb[relayFetchArgs, Received]{"relay-fetch", func(ctx context.Context, c *call, a relayFetchArgs) (Received, error) {
		return FetchFromRelay(ctx, c.layout, a)
	}}
	// envVerb replaces the secret env file and says whether it changed.
	envVerb = verb[[]byte, bool]{"env", func(_ context.Context, c *call, content []byte) (bool, error) {
		detail := changedNames(c.layout.EnvFile(), content)
		changed, err := SetEnv(c.layout, content)
		if changed || err != nil {
			c.audit("secrets", "", detail, err)
		}
		return changed, err
	}}
	lockVerb = verb[lockArgs, none]{"lock", func(_ context.Context, c *call, a lockArgs) (none, error) {
		return none{}, AcquireLock(c.layout, Lock{Holder: a.Holder, Op: a.Op, Since: time.Now().UTC().Truncate(time.Second)})
	}}
	unlockVerb = verb[unlockArgs, none]{"unlock", func(_ context.Context, c *call, a unlockArgs) (none, error) {
		return none{}, ReleaseLock(c.layout, a.Holder, a.Force)
	}}
	activateVerb = verb[activateArgs, none]{"activate", func(ctx context.Context, c *call, a activateArgs) (none, error) {
		err := activateLogged(ctx, c.layout, &a.Spec, a.ID, c.stderr)
		op := a.Op
		if op == "" {
			op = "activate"
		}
		c.audit(op, a.ID, "", err)
		return none{}, err
	}}
	// checkVerb asks the current release for its health once.
	checkVerb = verb[Spec, string]{"check", func(ctx context.Context, c *call, s Spec) (string, error) {
		return Check(ctx, c.layout, &s)
	}}
	statusVerb = verb[none, *Status]{"status", func(ctx context.Context, c *call, _ none) (*Status, error) {
		return ReadStatus(ctx, c.layout)
	}}
	releasesVerb = verb[none, []ReleaseInfo]{"releases", func(_ context.Context, c *call, _ none) ([]ReleaseInfo, error) {
		return ListReleases(c.layout)
	}}
	previousVerb = verb[none, string]{"previous", func(_ context.Context, c *call, _ none) (string, error) {
		return PreviousID(c.layout)
	}}
	proxyStatusVerb = verb[none, []proxy.RouteStatus]{"proxy-status", func(ctx context.Context, _ *call, _ none) ([]proxy.RouteStatus, error) {
		return (&proxy.Client{Socket: ProxySocket}).Status(ctx)
	}}
	proxyRootVerb = verb[none, string]{"proxy-root", func(context.Context, *call, none) (string, error) {
		return ProxyRoot()
	}}
	// bootVerb is run by the app's boot unit, not by the client.
	bootVerb = verb[none, none]{"boot", func(ctx context.Context, c *call, _ none) (none, error) {
		return none{}, Boot(ctx, c.layout)
	}}
	execVerb = streamVerb[execArgs]{"exec", func(ctx context.Context, c *call, a execArgs) (int, error) {
		if a.Terminal {
			if c.terminal == nil {
				return 0, errors.New("exec on a terminal: hoist host was not called on one")
			}
			return ExecTerminal(ctx, c.layout, &a.Spec, a.Argv, c.terminal)
		}
		return Exec(ctx, c.layout, &a.Spec, a.Argv, c.stdin, c.stdout, c.stderr)
	}}
	logsVerb = streamVerb[logsArgs]{"logs", func(ctx context.Context, c *call, a logsArgs) (int, error) {
		return journal(ctx, c, a)
	}}
	maintenanceVerb = verb[maintenanceArgs, none]{"maintenance", func(ctx context.Context, c *call, a maintenanceArgs) (none, error) {
		var m *proxy.Maintenance
		op := "maintenance off"
		if a.On {
			m, op = &proxy.Maintenance{Message: a.Message, RetryAfter: proxy.Duration{Duration: a.RetryAfter}}, "maintenance on"
		}
		err := SetMaintenance(ctx, c.layout, m)
		c.audit(op, c.layout.CurrentID(), a.Message, err)
		return none{}, err
	}}
	auditVerb = verb[auditArgs, []AuditEntry]{"audit", func(_ context.Context, c *call, a auditArgs) ([]AuditEntry, error) {
		return ReadAudit(c.layout, a.Lines)
	}}

	// The accessories' verbs (accessories.go, internal/accessory).
	accessorySetupVerb = verb[accessory.Spec, accessory.Connection]{"accessory-setup", func(ctx context.Context, c *call, s accessory.Spec) (accessory.Connection, error) {
		var conn accessory.Connection
		err := recordDestination(c.layout, c.destination)
		if err == nil {
			conn, err = accessory.Setup(ctx, &s, c.layout.Accessory(s.Name), c.stderr)
		}
		c.audit("accessory setup", "", s.Name, err)
		return conn, err
	}}
	// accessoryEnvVerb replaces the file of the accessories' URLs.
	accessoryEnvVerb = verb[[]byte, bool]{"accessory-env", func(_ context.Context, c *call, content []byte) (bool, error) {
		return SetAccessoriesEnv(c.layout, content)
	}}
	accessoryStatusVerb = verb[accessoryArgs, []accessory.Status]{"accessory-status", func(ctx context.Context, c *call, a accessoryArgs) ([]accessory.Status, error) {
		return accessoryStatus(ctx, c.layout, a.Name)
	}}
	accessoryRestartVerb = verb[accessoryArgs, none]{"accessory-restart", func(ctx context.Context, c *call, a accessoryArgs) (none, error) {
		s, _, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return none{}, err
		}
		return none{}, accessory.Restart(ctx, s)
	}}
	// accessoryBackupVerb is also what the backup timer runs.
	accessoryBackupVerb = verb[accessoryArgs, accessory.BackupInfo]{"accessory-backup", func(ctx context.Context, c *call, a accessoryArgs) (accessory.BackupInfo, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return accessory.BackupInfo{}, err
		}
		return accessory.Backup(ctx, s, p)
	}}
	accessoryBackupsVerb = verb[accessoryArgs, []accessory.BackupInfo]{"accessory-backups", func(_ context.Context, c *call, a accessoryArgs) ([]accessory.BackupInfo, error) {
		_, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return nil, err
		}
		bs, err := accessory.ListBackups(p.Backups)
		if bs == nil {
			bs = []accessory.BackupInfo{}
		}
		return bs, err
	}}
	accessoryReceiveVerb = verb[accessoryFileArgs, accessory.BackupInfo]{"accessory-receive", func(_ context.Context, c *call, a accessoryFileArgs) (accessory.BackupInfo, error) {
		_, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return accessory.BackupInfo{}, err
		}
		return accessory.ReceiveBackup(p, a.File, a.Size, c.stdin)
	}}
	accessoryRestoreVerb = verb[accessoryFileArgs, none]{"accessory-restore", func(ctx context.Context, c *call, a accessoryFileArgs) (none, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return none{}, err
		}
		err = accessory.Restore(ctx, s, p, a.File, a.Confirm, c.stderr)
		var ce *accessory.ConfirmError
		if !errors.As(err, &ce) { // a refusal to go on unconfirmed changed nothing
			c.audit("accessory restore", "", a.Name+" from "+a.File, err)
		}
		return none{}, err
	}}
	accessoryFetchVerb = streamVerb[accessoryFileArgs]{"accessory-fetch", func(_ context.Context, c *call, a accessoryFileArgs) (int, error) {
		return fetchBackup(c.layout, a, c.stdout)
	}}
	accessoryLogsVerb = streamVerb[accessoryLogsArgs]{"accessory-logs", func(ctx context.Context, c *call, a accessoryLogsArgs) (int, error) {
		return accessoryJournal(ctx, c, a)
	}}
)

var verbs = verbTable(setupVerb, shipIndexVerb, receiveVerb, relayServeVerb, relayFetchVerb, envVerb, lockVerb, unlockVerb, activateVerb, checkVerb,
	statusVerb, releasesVerb, previousVerb, proxyStatusVerb, proxyRootVerb, bootVerb, execVerb, logsVerb, auditVerb, maintenanceVerb,
	accessorySetupVerb, accessoryEnvVerb, accessoryStatusVerb, accessoryRestartVerb, accessoryBackupVerb,
	accessoryBackupsVerb, accessoryReceiveVerb, accessoryRestoreVerb, accessoryFetchVerb, accessoryLogsVerb)

// journal writes the app's journal, all its releases, to c.stdout.
func journal(ctx context.Context, c *call, a logsArgs) (int, error) {
	return journalctl(ctx, c, systemd.InstancePattern(c.layout.App), a.Lines, a.Follow)
}

// BootRequest is what the boot unit of app, set up for destination
// dest, gives `hoist host boot` on stdin.
func BootRequest(app, dest string) string {
	return unitRequest(app, dest, none{})
}

// unitRequest is the request a unit of app gives hoist on stdin: one
// line, without its newline (StandardInputText= adds it).
func unitRequest(app, dest string, args any) string {
	line, _ := request{App: app, Destination: dest}.encode(args) // plain structs: cannot fail
	return string(line[:len(line)-1])
}
