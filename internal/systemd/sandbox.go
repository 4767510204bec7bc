package systemd

import (
	"fmt"
	"strings"
)

// Directive is one setting of a unit's [Service] section.
type Directive struct{ Key, Value string }

func (d Directive) String() string { return d.Key + "=" + d.Value }

// base is the sandbox every service hoist writes or drops in starts
// from: no privileges to gain, a read-only system, no home directories,
// a private /tmp and /dev, the kernel's settings out of reach, no
// capabilities, network sockets only, the system calls of a service.
var base = []Directive{
	{"NoNewPrivileges", "yes"},
	{"ProtectSystem", "strict"},
	{"ProtectHome", "yes"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"ProtectKernelTunables", "yes"},
	{"ProtectKernelModules", "yes"},
	{"ProtectKernelLogs", "yes"},
	{"ProtectControlGroups", "yes"},
	{"ProtectClock", "yes"},
	{"ProtectHostname", "yes"},
	{"ProtectProc", "invisible"},
	{"RestrictSUIDSGID", "yes"},
	{"RestrictRealtime", "yes"},
	{"RestrictNamespaces", "yes"},
	{"LockPersonality", "yes"},
	{"RemoveIPC", "yes"},
	{"CapabilityBoundingSet", ""},
	{"AmbientCapabilities", ""},
	{"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
	{"SystemCallArchitectures", "native"},
	{"SystemCallFilter", "@system-service"},
	{"SystemCallErrorNumber", "EPERM"},
}

// Base returns the directives every unit's sandbox starts from.
func Base() []Directive { return append([]Directive(nil), base...) }

// Hardening is one unit's sandbox: the base, the paths the unit may
// write, and where it differs from the base, each difference with its
// reason, so that a unit is never less confined by accident.
type Hardening struct {
	// Writable are the paths the unit may write besides its own
	// StateDirectory= and RuntimeDirectory= (ReadWritePaths=); a path
	// with a leading "-" may be missing.
	Writable []string
	// DropIn is set for a drop-in on a distribution's unit: its own
	// ReadWritePaths= are reset first, so that only Writable remain.
	DropIn bool
	// Relax are the base directives this unit sets otherwise.
	Relax []Relaxation
	// Tighten are directives beyond the base.
	Tighten []Directive
}

// Relaxation is a base directive a unit sets to another value, and why.
type Relaxation struct {
	Directive
	Why string // one line
}

// Effective is the value the unit gets for base directive key.
func (h Hardening) Effective(key string) string {
	for _, r := range h.Relax {
		if r.Key == key {
			return r.Value
		}
	}
	for _, d := range base {
		if d.Key == key {
			return d.Value
		}
	}
	return ""
}

// Sandbox renders h's directives, one a line, for a [Service] section.
// A relaxation of a directive that is not in the base, or with a reason
// that is not one line, is a mistake in hoist: it panics.
func Sandbox(h Hardening) string {
	relaxed := map[string]Relaxation{}
	for _, r := range h.Relax {
		if !isBase(r.Key) || r.Why == "" || strings.ContainsAny(r.Why, "\n\r") {
			panic(fmt.Sprintf("systemd: relaxation %s: not a base directive, or no one-line reason", r.Directive))
		}
		relaxed[r.Key] = r
	}
	var b strings.Builder
	for _, d := range base {
		if r, ok := relaxed[d.Key]; ok {
			b.WriteString("# Relaxed: " + r.Why + "\n")
			d = r.Directive
		}
		b.WriteString(d.String() + "\n")
	}
	if h.DropIn {
		b.WriteString("ReadWritePaths=\n")
	}
	if len(h.Writable) > 0 {
		b.WriteString("ReadWritePaths=" + strings.Join(h.Writable, " ") + "\n")
	}
	for _, d := range h.Tighten {
		b.WriteString(d.String() + "\n")
	}
	return b.String()
}

func isBase(key string) bool {
	for _, d := range base {
		if d.Key == key {
			return true
		}
	}
	return false
}
