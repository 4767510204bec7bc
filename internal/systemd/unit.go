// Package systemd renders the units hoist installs on a host and drives
// systemctl and journalctl there.
package systemd

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/hoistdev/hoist/internal/names"
)

// App is what a unit needs to know about an app.
type App struct {
	Name string // app name, as in hoist.yml
	// User is the system user the app runs as.
	User string
	// ReleaseDir is the directory of release %i, and PortFile what it was
	// given when it started (its port); both name the release as %i.
	ReleaseDir string
	PortFile   string
	// StateDirectory is the app's writable directory, relative to
	// /var/lib, as systemd's StateDirectory= takes it.
	StateDirectory string
	// Command starts the app; a first word with a slash is relative to the
	// release directory.
	Command string
	Port    int
	// Env holds plain variables; EnvFile holds the secret ones (0600, root),
	// which systemd reads before it drops privileges, after
	// AccessoriesEnvFile, the accessories' URLs (so a secret wins).
	Env                map[string]string
	EnvFile            string
	AccessoriesEnvFile string
	// CookieFile is the app's Erlang cookie on the host (0600, root),
	// read first, so that a secret RELEASE_COOKIE wins.
	CookieFile string
	// HoistBin is the hoist binary on the host, used by the boot unit,
	// which gives it BootRequest on stdin.
	HoistBin    string
	BootRequest string
}

// TemplateName is the unit template that runs one release: instance %i is
// the release id, so two releases can run side by side.
func TemplateName(app string) string { return names.TemplateUnit(app) }

// InstanceName is the unit running release id of app.
func InstanceName(app, id string) string { return names.InstanceUnit(app, id) }

// BootName is the unit that starts the current release at boot.
func BootName(app string) string { return names.BootUnit(app) }

// StoreSyncName is the unit that switches to the release the app's
// store names.
func StoreSyncName(app string) string { return names.StoreSyncUnit(app) }

// InstancePattern matches all release units of app, for journalctl and
// systemctl list-units.
func InstancePattern(app string) string { return names.InstancePattern(app) }

var templateUnit = template.Must(template.New("unit").Parse(`# Written by hoist; changes are overwritten on the next deploy.
[Unit]
Description=hoist app {{.Name}}, release %i
After=network-online.target
Wants=network-online.target
PartOf={{.Boot}}
# A release that keeps crashing stops being restarted; hoist reports it.
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
User={{.User}}
Group={{.User}}
WorkingDirectory={{.ReleaseDir}}
ExecStart={{.ExecStart}}
{{- range .Env}}
Environment={{.}}
{{- end}}
{{- if .CookieFile}}
EnvironmentFile=-{{.CookieFile}}
{{- end}}
{{- if .AccessoriesEnvFile}}
EnvironmentFile=-{{.AccessoriesEnvFile}}
{{- end}}
EnvironmentFile=-{{.EnvFile}}
# What the release was given when it started: behind the proxy its own
# PORT, and for an OTP release its own epmd (ERL_EPMD_PORT).
EnvironmentFile=-{{.PortFile}}
Restart=on-failure
RestartSec=1s
TimeoutStopSec=30s
StateDirectory={{.StateDirectory}}
StateDirectoryMode=0750
UMask=0027

# Hardening: the app sees a read-only system, no home directories, a
# private /tmp and /dev, and cannot gain privileges. It may write only to
# its state directory (/var/lib/{{.StateDirectory}}, $STATE_DIRECTORY).
{{.Sandbox}}`))

// ReleaseHardening is the sandbox of an app's releases: the base; they
// write only to their StateDirectory=.
func ReleaseHardening(App) Hardening { return Hardening{} }

// BootHardening is the sandbox of the boot unit: hoist, as root, asks
// systemd to start the current release, and may write only the
// release's port file again (an OTP release's epmd port).
func BootHardening(a App) Hardening {
	var h Hardening
	if a.PortFile != "" {
		h.Writable = []string{"-" + filepath.Dir(a.PortFile)}
	}
	return h
}

var bootUnit = template.Must(template.New("boot").Parse(`# Written by hoist; changes are overwritten on the next deploy.
[Unit]
Description=hoist app {{.Name}}: starts its current release
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={{.HoistBin}} host boot
StandardInput=data
StandardInputText={{.BootRequest}}

# Hardening: hoist starts as root and only asks systemd to start the
# current release; it keeps no capabilities.
{{.Sandbox}}
[Install]
WantedBy=multi-user.target
`))

// storeSyncUnit runs `hoist host store-sync` once the boot unit has
// started the current release, so the host serves while it fetches. It
// does what a deploy over SSH has `hoist host` do (fetch, write units,
// activate), as root as that does, so it gets no sandbox of its own:
// confining it would only cut the activation short. At boot the network
// or the store may be late: it tries again every 30 s, 20 times at
// most in 15 minutes, then stays failed (its journal says why).
var storeSyncUnit = template.Must(template.New("store-sync").Parse(`# Written by hoist; changes are overwritten on the next deploy.
[Unit]
Description=hoist app {{.Name}}: switches to the release its store names
After=network-online.target {{.Boot}} {{.Proxy}}
Wants=network-online.target
StartLimitIntervalSec=15min
StartLimitBurst=20

[Service]
Type=oneshot
ExecStart={{.HoistBin}} host store-sync
StandardInput=data
StandardInputText={{.BootRequest}}
Restart=on-failure
RestartSec=30s
TimeoutStartSec=10min

[Install]
WantedBy=multi-user.target
`))

// StoreSync renders the store-sync unit; a.BootRequest is its request
// too (the verb is in its command line).
func StoreSync(a App) ([]byte, error) {
	var b bytes.Buffer
	if err := storeSyncUnit.Execute(&b, struct {
		App
		Boot, Proxy string
	}{a, BootName(a.Name), names.ProxyServiceUnit}); err != nil {
		return nil, fmt.Errorf("render store-sync unit: %w", err)
	}
	return b.Bytes(), nil
}

// ReleaseEnv is the environment hoist gives release id of app, before
// run.env, the secrets and the release's port file: the unit sets it
// (with id "%i") and exec sets it again.
func ReleaseEnv(app, id string, port int) []string {
	return []string{
		"PORT=" + strconv.Itoa(port),
		"HOIST_APP=" + app,
		"HOIST_RELEASE=" + id,
		// An OTP release (mix release) names its Erlang node after
		// RELEASE_NODE: one per release, so that two run side by side.
		// hoist's port file gives it its host part.
		"RELEASE_NODE=" + NodeName(app, id),
	}
}

// NodeName is the name of release id's Erlang node, without its host.
func NodeName(app, id string) string { return app + "-" + id }

// Template renders the release unit template.
func Template(a App) ([]byte, error) {
	execStart, err := releaseExecStart(a.ReleaseDir, a.Command)
	if err != nil {
		return nil, fmt.Errorf("render unit: run command: %w", err)
	}
	plain := make([]string, 0, len(a.Env))
	for k, v := range a.Env {
		plain = append(plain, quote(k+"="+v))
	}
	sort.Strings(plain)
	env := append(ReleaseEnv(a.Name, "%i", a.Port), plain...)
	var b bytes.Buffer
	err = templateUnit.Execute(&b, struct {
		App
		Boot, ExecStart string
		Env             []string
		Sandbox         string
	}{a, BootName(a.Name), execStart, env, Sandbox(ReleaseHardening(a))})
	if err != nil {
		return nil, fmt.Errorf("render unit: %w", err)
	}
	return b.Bytes(), nil
}

// Boot renders the boot unit.
func Boot(a App) ([]byte, error) {
	var b bytes.Buffer
	err := bootUnit.Execute(&b, struct {
		App
		Sandbox string
	}{a, Sandbox(BootHardening(a))})
	if err != nil {
		return nil, fmt.Errorf("render boot unit: %w", err)
	}
	return b.Bytes(), nil
}

// releaseExecStart turns a run command into an ExecStart= value: its
// words are passed as written (no shell, no variables); a first word
// with a slash is made absolute inside releaseDir, in which %i stands
// for the release id (the one specifier it may hold); a bare name is
// left for systemd to find in its search path.
func releaseExecStart(releaseDir, command string) (string, error) {
	words := strings.Fields(command)
	if len(words) == 0 || !strings.Contains(words[0], "/") || strings.HasPrefix(words[0], "/") {
		return ExecStart(words)
	}
	file := "/" + strings.TrimPrefix(words[0], "./")
	// Checked whole, with a stand-in for the release id.
	if err := checkProgram(strings.ReplaceAll(releaseDir, "%i", "x") + file); err != nil {
		return "", err
	}
	rest, err := ExecStart(append([]string{"/x"}, words[1:]...))
	if err != nil {
		return "", err
	}
	parts := append(strings.Split(releaseDir, "%i"), "")
	quoted := false
	for i, p := range parts {
		if i == len(parts)-1 {
			p = file
		}
		var q bool
		parts[i], q = escapeWord(p)
		quoted = quoted || q && p != "" // an empty part is no empty word
	}
	// The release directory's %i stays a specifier; the file's would not.
	dir := strings.Join(parts[:len(parts)-1], "%i")
	return quoteWord(dir+parts[len(parts)-1], quoted) + strings.TrimPrefix(rest, "/x"), nil
}

// quote makes s one Environment= assignment: double quotes, with
// backslash, quote and specifier characters escaped.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// ProxySocketName and ProxyServiceName are the edge proxy's units.
const (
	ProxySocketName  = names.ProxySocketUnit
	ProxyServiceName = names.ProxyServiceUnit
)

// ProxySocket renders the socket unit that holds the proxy's public port:
// systemd keeps it open while the proxy restarts.
func ProxySocket() []byte {
	return []byte(`# Written by hoist.
[Unit]
Description=hoist edge proxy: public port

[Socket]
ListenStream=80
ListenStream=443
NoDelay=true

[Install]
WantedBy=sockets.target
`)
}

// Proxy is what the edge proxy's service unit says.
type Proxy struct {
	HoistBin string
	// User is the system user the proxy runs as; it owns only the
	// proxy's runtime and state directories.
	User string
	// RuntimeDir (under /run) holds the control socket Control;
	// StateDir (under /var/lib) the routes and certificates.
	RuntimeDir, StateDir string
	Control              string
	// Args follow `hoist proxy run --control Control`.
	Args []string
}

var proxyUnit = template.Must(template.New("proxy").Parse(`# Written by hoist.
[Unit]
Description=hoist edge proxy
Requires={{.Socket}}
After=network-online.target {{.Socket}}
Wants=network-online.target

[Service]
Type=notify
# After an upgrade the new process, a child of the old one, tells
# systemd it is the main process.
NotifyAccess=all
User={{.User}}
Group={{.User}}
ExecStart={{.ExecStart}}
# A reload upgrades without a gap: the running proxy starts the hoist
# binary on disk and hands it the listening sockets; the old process
# finishes its requests and exits.
ExecReload={{.ExecReload}}
TimeoutStartSec=90s
# The proxy gives requests in flight 30s to finish when it stops.
TimeoutStopSec=40s
# systemd holds the listening sockets meanwhile: connections wait in the
# backlog for the restarted proxy.
Restart=always
RestartSec=100ms
RuntimeDirectory={{.RuntimeDir}}
RuntimeDirectoryPreserve=yes
StateDirectory={{.StateDir}}
StateDirectoryMode=0700
UMask=0077
LimitNOFILE=1048576

# Hardening: the proxy gets its public sockets from systemd, so it needs
# no privilege at all. It may write only to its state and runtime
# directories.
{{.Sandbox}}
[Install]
WantedBy=multi-user.target
`))

// ProxyHardening is the proxy's sandbox: the base, and more, since it
// runs no other program: no user but its own, no other processes in
// /proc, no memory both writable and executable.
func ProxyHardening(Proxy) Hardening {
	return Hardening{Tighten: []Directive{{"PrivateUsers", "yes"}, {"ProcSubset", "pid"}, {"MemoryDenyWriteExecute", "yes"}}}
}

// ProxyService renders the proxy's service unit.
func ProxyService(p Proxy) ([]byte, error) {
	run, err := ExecStart(append([]string{p.HoistBin, "proxy", "run", "--control", p.Control}, p.Args...))
	if err != nil {
		return nil, fmt.Errorf("render proxy unit: %w", err)
	}
	reload, err := ExecStart([]string{p.HoistBin, "proxy", "upgrade", "--control", p.Control})
	if err != nil {
		return nil, fmt.Errorf("render proxy unit: %w", err)
	}
	var b bytes.Buffer
	err = proxyUnit.Execute(&b, struct {
		Proxy
		ExecStart, ExecReload, Socket, Sandbox string
	}{p, run, reload, ProxySocketName, Sandbox(ProxyHardening(p))})
	if err != nil {
		return nil, fmt.Errorf("render proxy unit: %w", err)
	}
	return b.Bytes(), nil
}
