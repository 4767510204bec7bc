// Package names holds the names hoist gives things on a host: the
// system user, systemd units and directories of each app, made from its
// name, and hoist's own beside them (the edge proxy's user and units,
// the host's facts). An app whose names would be one of hoist's own is
// refused: app `proxy` would run as the proxy's user, which holds every
// app's TLS keys, and overwrite its unit. Both ends check it, config in
// hoist.yml and the host in every request, so both import this package;
// it imports nothing of hoist's.
//
// A name hoist adds for itself on a host belongs in Own, and a name it
// makes from an app's in the forms list: the names they would collide
// with are then reserved without anyone writing them down.
package names

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Kind is what a name names; names collide only within a kind.
type Kind string

const (
	// User is a system user, and its group of the same name.
	User Kind = "user"
	// Unit is a systemd unit.
	Unit Kind = "unit"
	// BaseEntry is an entry of hoist's base directory, /var/lib/hoist.
	BaseEntry Kind = "entry of /var/lib/hoist"
	// StateEntry is an entry of /var/lib, as systemd's StateDirectory=
	// takes it.
	StateEntry Kind = "entry of /var/lib"
)

// hoist's own names on a host.
const (
	// ProxyUser is the system user the edge proxy runs as.
	ProxyUser = "hoist-proxy"
	// ProxySocketUnit holds the proxy's public ports; ProxyServiceUnit
	// is the proxy.
	ProxySocketUnit  = "hoist-proxy.socket"
	ProxyServiceUnit = "hoist-proxy.service"
	// FactsEntry records the host's facts; ProxyEntry holds the proxy's
	// files (its StateDirectory=, BaseStateEntry/ProxyEntry).
	FactsEntry = "host.json"
	ProxyEntry = "proxy"
	// BaseStateEntry is hoist's base directory in /var/lib.
	BaseStateEntry = "hoist"
)

// Own lists hoist's own names on a host, by kind.
var Own = map[Kind][]string{
	User:       {ProxyUser},
	Unit:       {ProxySocketUnit, ProxyServiceUnit},
	BaseEntry:  {FactsEntry, ProxyEntry},
	StateEntry: {BaseStateEntry},
}

const prefix = "hoist-"

// AppUser is the system user, and group, app runs as.
func AppUser(app string) string { return prefix + app }

// AppStateDir is app's writable directory in /var/lib.
func AppStateDir(app string) string { return prefix + app }

// TemplateUnit is the unit template that runs one release of app:
// instance %i is the release id.
func TemplateUnit(app string) string { return prefix + app + "@.service" }

// InstanceUnit is the unit running release id of app.
func InstanceUnit(app, id string) string { return prefix + app + "@" + id + ".service" }

// BootUnit starts app's current release at boot.
func BootUnit(app string) string { return prefix + app + ".service" }

// StoreSyncUnit switches app to the release its store names, at boot.
func StoreSyncUnit(app string) string { return prefix + app + ".store-sync.service" }

// InstancePattern matches all release units of app, for journalctl and
// systemctl list-units.
func InstancePattern(app string) string { return prefix + app + "@*.service" }

// BackupService and BackupTimer back up accessory name of app.
func BackupService(app, name string) string { return prefix + app + "." + name + "-backup.service" }
func BackupTimer(app, name string) string   { return prefix + app + "." + name + "-backup.timer" }

// Stand-ins for the app's name, and for the other part (a release id,
// an accessory name) of a name made from it.
const (
	appMark   = "\x00"
	otherMark = "\x01"
)

// forms are the names made from an app's, by kind: a new one belongs
// here, so that the app names it could collide with are reserved.
var forms = []struct {
	kind Kind
	name func(app string) string
}{
	{User, AppUser},
	{StateEntry, AppStateDir},
	{BaseEntry, func(app string) string { return app }},
	{Unit, TemplateUnit},
	{Unit, BootUnit},
	{Unit, StoreSyncUnit},
	{Unit, func(app string) string { return InstanceUnit(app, otherMark) }},
	{Unit, func(app string) string { return BackupService(app, otherMark) }},
	{Unit, func(app string) string { return BackupTimer(app, otherMark) }},
}

// Names are what app gets on a host, by kind, with other standing for
// a release id or accessory name.
func Names(app, other string) map[Kind][]string {
	out := map[Kind][]string{}
	for _, f := range forms {
		out[f.kind] = append(out[f.kind], strings.ReplaceAll(f.name(app), otherMark, other))
	}
	return out
}

var appPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// reserved maps each reserved app name to hoist's own names it would
// take.
var reserved = reserve()

func reserve() map[string][]string {
	out := map[string][]string{}
	for _, f := range forms {
		parts := strings.Split(regexp.QuoteMeta(f.name(appMark)), appMark)
		re := regexp.MustCompile("^" + strings.ReplaceAll(strings.Join(parts, "([a-z0-9-]+)"), otherMark, ".+") + "$")
		for _, own := range Own[f.kind] {
			if m := re.FindStringSubmatch(own); m != nil {
				out[m[1]] = append(out[m[1]], fmt.Sprintf("%s %s", f.kind, own))
			}
		}
	}
	return out
}

// Reserved lists the app names that would take hoist's own names.
func Reserved() []string {
	out := make([]string, 0, len(reserved))
	for app := range reserved {
		out = append(out, app)
	}
	sort.Strings(out)
	return out
}

// Valid reports whether name has the form hoist takes for the names it
// puts into users, units and paths (an app's, a scheduled task's),
// whether or not it is reserved.
func Valid(name string) bool { return appPattern.MatchString(name) && !strings.HasSuffix(name, "-") }

// CheckApp says why name cannot name an app, or "" when it can.
func CheckApp(name string) string {
	if !Valid(name) {
		return fmt.Sprintf("%q is not a valid app name: use lowercase letters, digits and dashes, starting with a letter, at most 32 characters", name)
	}
	if own, ok := reserved[name]; ok {
		return fmt.Sprintf("%q is reserved: an app of that name would take hoist's own %s; choose another name", name, strings.Join(own, ", "))
	}
	return ""
}

// IsHoists reports whether a user or unit name is in the namespace
// hoist makes its own and its apps' names in.
func IsHoists(name string) bool { return strings.HasPrefix(name, prefix) }
