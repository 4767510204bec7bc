// Package host is the part of hoist that runs on a deploy target, as
// `hoist host ...` invoked over SSH: it receives and unpacks releases,
// installs units, activates a release behind a health check, rolls back,
// and answers status queries. It never imports the CLI; the client side
// reaches it through Client.
package host

import (
	"os"
	"path/filepath"
	"sort"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/release"
)

// Every path hoist uses on a host is named here, and docs/hosts.md lists
// them all. The names in them that an app's could meet (users, units,
// the entries of DefaultBase) come from internal/names, which reserves
// the app names that would take hoist's own.
const (
	// BinPath is where setup installs the hoist binary.
	BinPath = hostproto.BinPath
	// DefaultBase holds the apps' directories, the host's facts and the
	// edge proxy's files.
	DefaultBase = appStateBase + "/" + names.BaseStateEntry
	// ProxyUser is the system user the edge proxy runs as; it owns
	// ProxyDir (systemd's StateDirectory=) and ProxySocket.
	ProxyUser = names.ProxyUser
	// ProxySocket is the edge proxy's control socket.
	ProxySocket = "/run/hoist/proxy.sock"
	// ProxyDir holds the edge proxy's files; ProxyStorage its certificates
	// and keys, and its internal CA; ProxyStatePath its routes.
	ProxyDir       = DefaultBase + "/" + names.ProxyEntry
	ProxyStorage   = ProxyDir + "/certificates"
	ProxyStatePath = ProxyDir + "/state.json"
	// appStateBase is where systemd makes an app's StateDirectory.
	appStateBase = "/var/lib"
)

var (
	// UnitDir is where hoist writes its units; tests point it elsewhere.
	UnitDir = "/etc/systemd/system"
	// ProxyIssuerPath keeps the proxy's issuer between setups; the
	// proxy reads it when it starts.
	ProxyIssuerPath = ProxyDir + "/issuer.json"
	// ProxyTLSPlans holds each app's certificate plan (internal/certs),
	// 0600: the issuer's holds the DNS provider's credentials.
	ProxyTLSPlans = ProxyDir + "/tls"
	// ProxyTrusted holds each app's trusted proxies (Spec.TrustedProxies),
	// one file per app, which the proxy's command line is made from.
	ProxyTrusted = ProxyDir + "/trusted"
	// ProxyRootPath is the internal CA's root certificate, for clients to
	// trust, when the proxy runs with --tls-internal.
	ProxyRootPath = certs.InternalRootPath(ProxyStorage)
)

// FactsFile is where setup records the host's facts, under base (""
// means DefaultBase).
func FactsFile(base string) string {
	if base == "" {
		base = DefaultBase
	}
	return filepath.Join(base, names.FactsEntry)
}

// Layout names the paths of one app on a host:
//
//	BASE/APP/releases/ID/       releases, each with its manifest and index, never changed once in place
//	BASE/APP/current            symlink to releases/ID: the release that serves
//	BASE/APP/uploads/ID.index   the index of a release being received
//	BASE/APP/uploads/ID.pack    its objects that arrived, kept to resume
//	BASE/APP/shared/env         secret environment, 0600 root, read by systemd
//	BASE/APP/shared/accessories.env  the accessories' URLs, 0600 root, read by systemd
//	BASE/APP/shared/cookie.env  the app's Erlang cookie on this host (RELEASE_COOKIE), 0600 root, read by systemd
//	BASE/APP/destination        the destination the app is set up for
//	BASE/APP/maintenance.json   the maintenance mode, while it is on
//	BASE/APP/audit.log          the audit trail: one JSON line per operation
//	BASE/APP/accessories/NAME/  an accessory's spec, password and backups, 0700 root
//	BASE/APP/ports/ID.env       what each release was given: PORT, its epmd and node name
//	BASE/APP/deploy.lock        who deploys, since when
//	BASE/APP/failed/ID.json     a release that failed its health check: when, why
//	BASE/APP/activations/ID.log what each activation of release ID did, and when
//	BASE/APP/schedule.json      the scheduled tasks the host runs, 0600 root
//	BASE/APP/tasks/NAME.json    how the last run of task NAME went
//	/var/lib/hoist-APP/         the app's own writable directory
type Layout struct {
	App  string
	Root string
}

// For returns the layout of app under base ("" means DefaultBase).
func For(base, app string) Layout {
	if base == "" {
		base = DefaultBase
	}
	return Layout{App: app, Root: filepath.Join(base, app)}
}

// Base is the directory that holds the app's: DefaultBase on a host.
func (l Layout) Base() string { return filepath.Dir(l.Root) }

func (l Layout) Releases() string         { return filepath.Join(l.Root, "releases") }
func (l Layout) Release(id string) string { return filepath.Join(l.Root, "releases", id) }
func (l Layout) Current() string          { return filepath.Join(l.Root, "current") }
func (l Layout) Uploads() string          { return filepath.Join(l.Root, "uploads") }

// indexUpload and packFile hold a release being received: its index,
// and the objects that arrived (shipping, ship.go).
func (l Layout) indexUpload(id string) string { return filepath.Join(l.Uploads(), id+".index") }
func (l Layout) packFile(id string) string    { return filepath.Join(l.Uploads(), id+".pack") }
func (l Layout) Shared() string               { return filepath.Join(l.Root, "shared") }
func (l Layout) EnvFile() string              { return filepath.Join(l.Root, "shared", "env") }
func (l Layout) LockFile() string             { return filepath.Join(l.Root, "deploy.lock") }
func (l Layout) SetupRecord() string          { return filepath.Join(l.Root, "setup.json") }
func (l Layout) Ports() string                { return filepath.Join(l.Root, "ports") }

// AccessoriesEnvFile holds the URLs of the app's accessories, passwords
// included: a secret file like EnvFile, which the units read before it
// so that a secret of the same name wins.
func (l Layout) AccessoriesEnvFile() string {
	return filepath.Join(l.Root, "shared", "accessories.env")
}

// CookieFile holds the app's own Erlang cookie on this host, made by
// setup: a secret file like EnvFile, which the units read first, so
// that a secret RELEASE_COOKIE wins.
func (l Layout) CookieFile() string { return filepath.Join(l.Root, "shared", "cookie.env") }

// AuditLog is the app's audit trail on this host.
func (l Layout) AuditLog() string { return filepath.Join(l.Root, "audit.log") }

func (l Layout) destinationFile() string { return filepath.Join(l.Root, "destination") }

// maintenanceFile holds the app's maintenance mode while it is on, so
// that the route of every release deployed meanwhile has it.
func (l Layout) maintenanceFile() string { return filepath.Join(l.Root, "maintenance.json") }

// accessories holds the app's accessories on this host, one directory
// each.
func (l Layout) accessories() string { return filepath.Join(l.Root, "accessories") }

// Accessory is where accessory name of the app lives on this host.
func (l Layout) Accessory(name string) accessory.Place {
	dir := filepath.Join(l.accessories(), name)
	dest, _, _ := recordedDestination(l)
	return accessory.Place{
		Dir: dir, SpecFile: filepath.Join(dir, "spec.json"), Password: filepath.Join(dir, "password"),
		Backups: filepath.Join(dir, "backups"), UnitDir: UnitDir, HoistBin: BinPath,
		BackupRequest: unitRequest(l.App, dest, hostproto.AccessoryArgs{Name: name, Scheduled: true}),
	}
}

// failedDir marks the releases that failed their health check, one
// failedFile each.
func (l Layout) failedDir() string           { return filepath.Join(l.Root, "failed") }
func (l Layout) failedFile(id string) string { return filepath.Join(l.failedDir(), id+".json") }

// activationsDir holds each release's activation log (actlog.go).
func (l Layout) activationsDir() string { return filepath.Join(l.Root, "activations") }
func (l Layout) activationLog(id string) string {
	return filepath.Join(l.activationsDir(), id+".log")
}

// portFile holds what release id was given when it was started:
// systemd reads it as an EnvironmentFile, exec reads it too.
func (l Layout) portFile(id string) string { return filepath.Join(l.Ports(), id+".env") }

// User is the system user the app runs as.
func (l Layout) User() string { return names.AppUser(l.App) }

// StateDirName is the app's StateDirectory= for systemd, and StateDir
// the directory it names: the one the app may write to.
func (l Layout) StateDirName() string { return names.AppStateDir(l.App) }
func (l Layout) StateDir() string     { return filepath.Join(appStateBase, l.StateDirName()) }

// CurrentID returns the id of the current release, or "" when none is.
func (l Layout) CurrentID() string {
	target, err := os.Readlink(l.Current())
	if err != nil {
		return ""
	}
	id := filepath.Base(target)
	if !release.ValidID(id) {
		return ""
	}
	return id
}

// ReleaseIDs lists the complete releases on disk, oldest first.
func (l Layout) ReleaseIDs() ([]string, error) {
	entries, err := os.ReadDir(l.Releases())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && release.ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Manifest reads the manifest of an unpacked release.
func (l Layout) Manifest(id string) (*release.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(l.Release(id), release.ManifestName))
	if err != nil {
		return nil, err
	}
	return release.ParseManifest(b)
}
