package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	rstore "github.com/hoistdev/hoist/internal/store"
	"github.com/hoistdev/hoist/internal/systemd"
)

// The verbs of the host protocol (proto.go), each with its arguments,
// its result and what the host does.

var (
	setupVerb = verb[hostproto.Spec, hostproto.HostFacts]{hostproto.SetupVerb, func(ctx context.Context, c *call, s hostproto.Spec) (hostproto.HostFacts, error) {
		detail := ""
		if have, ok, _ := recordedDestination(c.layout); ok && have != c.destination {
			detail = "adopted: it served " + destinationName(have)
		}
		err := recordDestination(c.layout, c.destination)
		var facts hostproto.HostFacts
		if err == nil {
			facts, err = setupHost(ctx, c.layout, &s)
		}
		c.audit("setup", "", detail, err)
		return facts, err
	}}
	// shipIndexVerb takes the release's index on stdin.
	shipIndexVerb = verb[hostproto.ShipIndexArgs, hostproto.ShipState]{hostproto.ShipIndexVerb, func(_ context.Context, c *call, a hostproto.ShipIndexArgs) (hostproto.ShipState, error) {
		return shipIndex(c.layout, &a.Manifest, a.Base, c.stdin)
	}}
	// receiveVerb takes a transfer of the release's objects on stdin.
	receiveVerb = verb[release.Manifest, hostproto.Received]{hostproto.ReceiveVerb, func(_ context.Context, c *call, m release.Manifest) (hostproto.Received, error) {
		return receiveTransfer(c.layout, &m, c.stdin)
	}}
	// relayServeVerb prints a RelayOffer, then serves until stdin ends.
	relayServeVerb = streamVerb[hostproto.RelayServeArgs]{hostproto.RelayServeVerb, func(ctx context.Context, c *call, a hostproto.RelayServeArgs) (int, error) {
		return 0, serveRelay(ctx, c.layout, a, c.stdin, c.stdout, c.stderr)
	}}
	relayFetchVerb = verb[hostproto.RelayFetchArgs, hostproto.Received]{hostproto.RelayFetchVerb, func(ctx context.Context, c *call, a hostproto.RelayFetchArgs) (hostproto.Received, error) {
		return fetchFromRelay(ctx, c.layout, a)
	}}
	// storeFetchVerb fetches a release from the app's store.
	storeFetchVerb = verb[hostproto.StoreFetchArgs, hostproto.StoreFetched]{hostproto.StoreFetchVerb, func(ctx context.Context, c *call, a hostproto.StoreFetchArgs) (hostproto.StoreFetched, error) {
		return fetchFromStore(ctx, c.layout, c.destination, a.Record, rstore.DefaultRetries)
	}}
	// storeSyncVerb switches to the release the store's record names.
	storeSyncVerb = verb[hostproto.None, hostproto.StoreSynced]{hostproto.StoreSyncVerb, func(ctx context.Context, c *call, _ hostproto.None) (hostproto.StoreSynced, error) {
		out, attempted, err := syncFromStore(ctx, c.layout, c.destination, rstore.DefaultRetries, c.stderr)
		if attempted {
			c.audit("store-sync", out.Release, "", err)
		}
		return out, err
	}}
	// envVerb replaces the secret env file and says whether it changed.
	envVerb = verb[[]byte, bool]{hostproto.EnvVerb, func(_ context.Context, c *call, content []byte) (bool, error) {
		detail := changedNames(c.layout.EnvFile(), content)
		changed, err := setEnv(c.layout, content)
		if changed || err != nil {
			c.audit("secrets", "", detail, err)
		}
		return changed, err
	}}
	lockVerb = verb[hostproto.LockArgs, hostproto.None]{hostproto.LockVerb, func(_ context.Context, c *call, a hostproto.LockArgs) (hostproto.None, error) {
		lk := hostproto.Lock{Holder: a.Holder, Op: a.Op, Since: time.Now().UTC().Truncate(time.Second), Machine: a.Machine, PID: a.PID, Started: a.Started}
		return hostproto.None{}, takeOverLock(c.layout, lk, a.TakeOver)
	}}
	setupDoneVerb = verb[string, hostproto.None]{hostproto.SetupDoneVerb, func(_ context.Context, c *call, fingerprint string) (hostproto.None, error) {
		return hostproto.None{}, writeSetupRecord(c.layout, fingerprint)
	}}
	unlockVerb = verb[hostproto.UnlockArgs, hostproto.None]{hostproto.UnlockVerb, func(_ context.Context, c *call, a hostproto.UnlockArgs) (hostproto.None, error) {
		return hostproto.None{}, releaseLock(c.layout, a.Holder, a.Force)
	}}
	activateVerb = verb[hostproto.ActivateArgs, hostproto.None]{hostproto.ActivateVerb, func(ctx context.Context, c *call, a hostproto.ActivateArgs) (hostproto.None, error) {
		err := activateLogged(ctx, c.layout, &a.Spec, a.ID, c.stderr)
		op := a.Op
		if op == "" {
			op = "activate"
		}
		c.audit(op, a.ID, "", err)
		return hostproto.None{}, err
	}}
	// restartVerb starts the current release again with the
	// environment as it is now; it returns the release's id.
	restartVerb = verb[hostproto.Spec, string]{hostproto.RestartVerb, func(ctx context.Context, c *call, s hostproto.Spec) (string, error) {
		id, err := restart(ctx, c.layout, &s, c.stderr)
		c.audit("restart", id, "", err)
		return id, err
	}}
	// checkVerb asks the current release for its health once.
	checkVerb = verb[hostproto.Spec, string]{hostproto.CheckVerb, func(ctx context.Context, c *call, s hostproto.Spec) (string, error) {
		return checkCurrent(ctx, c.layout, &s)
	}}
	statusVerb = verb[hostproto.None, *hostproto.Status]{hostproto.StatusVerb, func(ctx context.Context, c *call, _ hostproto.None) (*hostproto.Status, error) {
		return readStatus(ctx, c.layout)
	}}
	releasesVerb = verb[hostproto.None, []hostproto.ReleaseInfo]{hostproto.ReleasesVerb, func(_ context.Context, c *call, _ hostproto.None) ([]hostproto.ReleaseInfo, error) {
		return listReleases(c.layout)
	}}
	previousVerb = verb[hostproto.None, string]{hostproto.PreviousVerb, func(_ context.Context, c *call, _ hostproto.None) (string, error) {
		return previousID(c.layout)
	}}
	proxyStatusVerb = verb[hostproto.None, []hostproto.RouteStatus]{hostproto.ProxyStatusVerb, func(ctx context.Context, _ *call, _ hostproto.None) ([]hostproto.RouteStatus, error) {
		return (&proxy.Client{Socket: ProxySocket}).Status(ctx)
	}}
	proxyRootVerb = verb[hostproto.None, string]{hostproto.ProxyRootVerb, func(context.Context, *call, hostproto.None) (string, error) {
		return proxyRoot()
	}}
	// bootVerb is run by the app's boot unit, not by the client.
	bootVerb = verb[hostproto.None, hostproto.None]{hostproto.BootVerb, func(ctx context.Context, c *call, _ hostproto.None) (hostproto.None, error) {
		return hostproto.None{}, boot(ctx, c.layout)
	}}
	execVerb = streamVerb[hostproto.ExecArgs]{hostproto.ExecVerb, func(ctx context.Context, c *call, a hostproto.ExecArgs) (int, error) {
		if a.Terminal {
			if c.terminal == nil {
				return 0, errors.New("exec on a terminal: hoist host was not called on one")
			}
			return execTerminal(ctx, c.layout, &a.Spec, a.Argv, c.terminal)
		}
		return execCommand(ctx, c.layout, &a.Spec, a.Argv, c.stdin, c.stdout, c.stderr)
	}}
	logsVerb = streamVerb[hostproto.LogsArgs]{hostproto.LogsVerb, func(ctx context.Context, c *call, a hostproto.LogsArgs) (int, error) {
		return journal(ctx, c, a)
	}}
	maintenanceVerb = verb[hostproto.MaintenanceArgs, hostproto.None]{hostproto.MaintenanceVerb, func(ctx context.Context, c *call, a hostproto.MaintenanceArgs) (hostproto.None, error) {
		var m *hostproto.Maintenance
		op := "maintenance off"
		if a.On {
			m, op = &hostproto.Maintenance{Message: a.Message, RetryAfter: hostproto.Duration{Duration: a.RetryAfter}}, "maintenance on"
		}
		err := setMaintenance(ctx, c.layout, m)
		c.audit(op, c.layout.CurrentID(), a.Message, err)
		return hostproto.None{}, err
	}}
	auditVerb = verb[hostproto.AuditArgs, []hostproto.AuditEntry]{hostproto.AuditVerb, func(_ context.Context, c *call, a hostproto.AuditArgs) ([]hostproto.AuditEntry, error) {
		return readAudit(c.layout, a.Lines)
	}}

	// The accessories' verbs (accessories.go, internal/accessory).
	accessorySetupVerb = verb[hostproto.AccessorySpec, hostproto.AccessoryConnection]{hostproto.AccessorySetupVerb, func(ctx context.Context, c *call, s hostproto.AccessorySpec) (hostproto.AccessoryConnection, error) {
		var conn hostproto.AccessoryConnection
		err := recordDestination(c.layout, c.destination)
		if err == nil {
			conn, err = accessory.Setup(ctx, &s, c.layout.Accessory(s.Name), c.stderr)
		}
		c.audit("accessory setup", "", s.Name, err)
		return conn, err
	}}
	// accessoryEnvVerb replaces the file of the accessories' URLs.
	accessoryEnvVerb = verb[[]byte, bool]{hostproto.AccessoryEnvVerb, func(_ context.Context, c *call, content []byte) (bool, error) {
		return setAccessoriesEnv(c.layout, content)
	}}
	accessoryStatusVerb = verb[hostproto.AccessoryArgs, []hostproto.AccessoryStatus]{hostproto.AccessoryStatusVerb, func(ctx context.Context, c *call, a hostproto.AccessoryArgs) ([]hostproto.AccessoryStatus, error) {
		return accessoryStatus(ctx, c.layout, a.Name)
	}}
	accessoryRestartVerb = verb[hostproto.AccessoryArgs, hostproto.None]{hostproto.AccessoryRestartVerb, func(ctx context.Context, c *call, a hostproto.AccessoryArgs) (hostproto.None, error) {
		s, _, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return hostproto.None{}, err
		}
		return hostproto.None{}, accessory.Restart(ctx, s)
	}}
	// accessoryBackupVerb is also what the backup timer runs.
	accessoryBackupVerb = verb[hostproto.AccessoryArgs, hostproto.BackupInfo]{hostproto.AccessoryBackupVerb, func(ctx context.Context, c *call, a hostproto.AccessoryArgs) (hostproto.BackupInfo, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return hostproto.BackupInfo{}, err
		}
		bi, err := accessory.Backup(ctx, s, p, a.Scheduled)
		if bi.OffsiteError != "" {
			fmt.Fprintf(c.stderr, "warning: backup %s stands on this host, but its copy off the host failed: %s\n", bi.File, bi.OffsiteError)
		}
		return bi, err
	}}
	accessoryBackupsVerb = verb[hostproto.AccessoryArgs, []hostproto.BackupInfo]{hostproto.AccessoryBackupsVerb, func(_ context.Context, c *call, a hostproto.AccessoryArgs) ([]hostproto.BackupInfo, error) {
		_, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return nil, err
		}
		bs, err := accessory.Backups(p)
		if bs == nil {
			bs = []hostproto.BackupInfo{}
		}
		return bs, err
	}}
	accessoryReceiveVerb = verb[hostproto.AccessoryFileArgs, hostproto.BackupInfo]{hostproto.AccessoryReceiveVerb, func(_ context.Context, c *call, a hostproto.AccessoryFileArgs) (hostproto.BackupInfo, error) {
		_, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return hostproto.BackupInfo{}, err
		}
		return accessory.ReceiveBackup(p, a.File, a.Size, c.stdin)
	}}
	// accessoryRestoreVerb returns the backup made of what the database
	// held, "" for none.
	accessoryRestoreVerb = verb[hostproto.AccessoryFileArgs, string]{hostproto.AccessoryRestoreVerb, func(ctx context.Context, c *call, a hostproto.AccessoryFileArgs) (string, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return "", err
		}
		before, err := accessory.Restore(ctx, s, p, a.File, a.Confirm, c.stderr)
		var ce *hostproto.ConfirmError
		if !errors.As(err, &ce) { // a refusal to go on unconfirmed changed nothing
			c.audit("accessory restore", "", a.Name+" from "+a.File, err)
		}
		return before, err
	}}
	accessoryVerifyVerb = verb[hostproto.AccessoryVerifyArgs, hostproto.Verification]{hostproto.AccessoryVerifyVerb, func(ctx context.Context, c *call, a hostproto.AccessoryVerifyArgs) (hostproto.Verification, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return hostproto.Verification{}, err
		}
		return accessory.VerifyRestore(ctx, s, p, a.File, c.stderr)
	}}
	accessoryImportVerb = verb[hostproto.AccessoryImportArgs, hostproto.BackupInfo]{hostproto.AccessoryImportVerb, func(ctx context.Context, c *call, a hostproto.AccessoryImportArgs) (hostproto.BackupInfo, error) {
		s, p, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return hostproto.BackupInfo{}, err
		}
		return accessory.ImportForeign(ctx, s, p, a.File, a.Size, c.stdin)
	}}
	accessoryOffsiteListVerb = verb[hostproto.AccessoryArgs, []hostproto.BackupInfo]{hostproto.AccessoryOffsiteListVerb, func(ctx context.Context, c *call, a hostproto.AccessoryArgs) ([]hostproto.BackupInfo, error) {
		s, _, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return nil, err
		}
		bs, err := accessory.ListOffsite(ctx, s)
		if bs == nil {
			bs = []hostproto.BackupInfo{}
		}
		return bs, err
	}}
	accessoryOffsiteFetchVerb = streamVerb[hostproto.AccessoryOffsiteArgs]{hostproto.AccessoryOffsiteFetchVerb, func(ctx context.Context, c *call, a hostproto.AccessoryOffsiteArgs) (int, error) {
		s, _, err := c.layout.loadAccessory(a.Name)
		if err != nil {
			return 0, err
		}
		return 0, accessory.FetchOffsite(ctx, s, a.File, c.stdout)
	}}
	accessoryFetchVerb = streamVerb[hostproto.AccessoryFileArgs]{hostproto.AccessoryFetchVerb, func(_ context.Context, c *call, a hostproto.AccessoryFileArgs) (int, error) {
		return fetchBackup(c.layout, a, c.stdout)
	}}
	accessoryLogsVerb = streamVerb[hostproto.AccessoryLogsArgs]{hostproto.AccessoryLogsVerb, func(ctx context.Context, c *call, a hostproto.AccessoryLogsArgs) (int, error) {
		return accessoryJournal(ctx, c, a)
	}}
)

var verbs = verbTable(setupVerb, setupDoneVerb, shipIndexVerb, receiveVerb, relayServeVerb, relayFetchVerb, storeFetchVerb, storeSyncVerb, binaryServeVerb, envVerb, lockVerb, unlockVerb, activateVerb, restartVerb, checkVerb,
	statusVerb, releasesVerb, previousVerb, proxyStatusVerb, proxyRootVerb, bootVerb, execVerb, logsVerb, auditVerb, maintenanceVerb,
	accessorySetupVerb, accessoryEnvVerb, accessoryStatusVerb, accessoryRestartVerb, accessoryBackupVerb,
	accessoryBackupsVerb, accessoryReceiveVerb, accessoryRestoreVerb, accessoryFetchVerb, accessoryLogsVerb,
	accessoryVerifyVerb, accessoryImportVerb, accessoryOffsiteListVerb, accessoryOffsiteFetchVerb,
	scheduleVerb, taskVerb, accessoryPsqlVerb)

// journal writes the app's journal, all its releases, to c.stdout.
func journal(ctx context.Context, c *call, a hostproto.LogsArgs) (int, error) {
	return journalctl(ctx, c, systemd.InstancePattern(c.layout.App), a.Lines, a.Follow)
}

// BootRequest is what the boot unit of app, set up for destination
// dest, gives `hoist host boot` on stdin.
func BootRequest(app, dest string) string {
	return unitRequest(app, dest, hostproto.None{})
}

// unitRequest is the request a unit of app gives hoist on stdin: one
// line, without its newline (StandardInputText= adds it).
func unitRequest(app, dest string, args any) string {
	line, _ := hostproto.Request{App: app, Destination: dest}.Encode(args) // plain structs: cannot fail
	return string(line[:len(line)-1])
}
