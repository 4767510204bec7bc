// Package systemd renders the units hoist installs on a host and drives
// systemctl and journalctl there.
package systemd

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
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
	// HoistBin is the hoist binary on the host, used by the boot unit,
	// which gives it BootRequest on stdin.
	HoistBin    string
	BootRequest string
}

// TemplateName is the unit template that runs one release: instance %i is
// the release id, so two releases can run side by side.
func TemplateName(app string) string { return "hoist-" + app + "@.service" }

// InstanceName is the unit running release id of app.
func InstanceName(app, id string) string { return "hoist-" + app + "@" + id + ".service" }

// BootName is the unit that starts the current release at boot.
func BootName(app string) string { return "hoist-" + app + ".service" }

// InstancePattern matches all release units of app, for journalctl and
// systemctl list-units.
func InstancePattern(app string) string { return "hoist-" + app + "@*.service" }

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
NoNewPrivileges=yes
ProtectSystem=strict
` + Sandbox))

// Sandbox is the hardening every service hoist writes or drops in
// shares: no home directories, a private /tmp and /dev, the kernel's
// settings out of reach, no capabilities, network sockets only, the
// system calls of a service. Each unit adds what it may write.
const Sandbox = `ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
`

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

[Install]
WantedBy=multi-user.target
`))

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
		"RELEASE_NODE=" + app + "-" + id,
	}
}

// Template renders the release unit template.
func Template(a App) ([]byte, error) {
	plain := make([]string, 0, len(a.Env))
	for k, v := range a.Env {
		plain = append(plain, quote(k+"="+v))
	}
	sort.Strings(plain)
	env := append(ReleaseEnv(a.Name, "%i", a.Port), plain...)
	var b bytes.Buffer
	err := templateUnit.Execute(&b, struct {
		App
		Boot, ExecStart string
		Env             []string
	}{a, BootName(a.Name), ExecStart(a.ReleaseDir, a.Command), env})
	if err != nil {
		return nil, fmt.Errorf("render unit: %w", err)
	}
	return b.Bytes(), nil
}

// Boot renders the boot unit.
func Boot(a App) ([]byte, error) {
	var b bytes.Buffer
	if err := bootUnit.Execute(&b, a); err != nil {
		return nil, fmt.Errorf("render boot unit: %w", err)
	}
	return b.Bytes(), nil
}

// ExecStart turns a run command into an ExecStart= value: a first word
// with a slash is made absolute inside releaseDir; a bare name is left
// for systemd to find in its search path.
func ExecStart(releaseDir, command string) string {
	words := strings.Fields(command)
	if len(words) == 0 {
		return ""
	}
	if strings.Contains(words[0], "/") && !strings.HasPrefix(words[0], "/") {
		words[0] = releaseDir + "/" + strings.TrimPrefix(words[0], "./")
	}
	// A literal % must be doubled, or systemd reads it as a specifier.
	for i := 1; i < len(words); i++ {
		words[i] = strings.ReplaceAll(words[i], "%", "%%")
	}
	return strings.Join(words, " ")
}

// quote makes s one Environment= assignment: double quotes, with
// backslash, quote and specifier characters escaped.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// ProxySocketName and ProxyServiceName are the edge proxy's units.
const (
	ProxySocketName  = "hoist-proxy.socket"
	ProxyServiceName = "hoist-proxy.service"
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

// ProxyService renders the proxy's service unit; extra are flags for
// hoist proxy run (the ACME CA and contact).
func ProxyService(hoistBin string, extra ...string) []byte {
	flags := ""
	for _, f := range extra {
		flags += " " + f
	}
	return []byte(`# Written by hoist.
[Unit]
Description=hoist edge proxy
Requires=hoist-proxy.socket
After=network-online.target hoist-proxy.socket

[Service]
Type=notify
ExecStart=` + hoistBin + ` proxy run --control /run/hoist/proxy.sock --state /var/lib/hoist/proxy/state.json --metrics 127.0.0.1:9180` + flags + `
Restart=always
RestartSec=1s
RuntimeDirectory=hoist
RuntimeDirectoryPreserve=yes
StateDirectory=hoist/proxy
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
`)
}
