package config

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"
)

// Project is what `hoist init` guessed about an app's repository.
type Project struct {
	Kind    string // go, elixir, rust or unknown
	App     string // app name, valid for hoist.yml
	Build   string // build command
	Output  string
	Command string // run command
	Builder string // "" means local
	Distro  string
	Image   string // the container builder's image
	// Target is build.target, written out when it is not this machine's
	// (a Mac's builds are for Linux hosts).
	Target string
	// Mac is set when init runs on macOS: the comments say how the
	// release is built for Linux there.
	Mac      bool
	Packages []string
	Caches   []string
	BuildEnv map[string]string
	RunEnv   map[string]string
	Port     int // the port the app serves on
	// Phoenix is set for a Phoenix app: the release must be told to
	// serve (PHX_SERVER) and needs a secret key base.
	Phoenix bool
	// Secrets are the secrets the app needs before its first deploy,
	// for `hoist secrets gen`.
	Secrets []string
}

// Detect guesses the project in dir from go.mod, mix.exs or Cargo.toml,
// for a build on this machine.
func Detect(dir string) Project { return DetectFor(dir, runtime.GOOS) }

// DetectFor is Detect on an operator's machine running goos. On macOS
// the release is built for Linux all the same: Go cross-compiles with
// the local builder; an Elixir release bundles the build machine's
// Erlang runtime and a Rust binary links its libc, so those build in a
// container of the hosts' distribution (the rootfs builder needs Linux).
func DetectFor(dir, goos string) Project {
	p := detect(dir)
	if goos != "darwin" {
		return p
	}
	p.Mac, p.Target = true, "linux/amd64"
	switch p.Kind {
	case "go":
		p.Build = "CGO_ENABLED=0 GOOS=linux go build -trimpath -o dist/" + p.App + " ."
	case "elixir":
		p.Builder, p.Distro, p.Packages = "container", "", nil
		p.Image = "docker.io/hexpm/elixir:1.17.3-erlang-27.2-debian-bookworm-20241202"
	case "rust":
		p.Builder, p.Image = "container", "docker.io/library/rust:1-bookworm"
		p.Caches = []string{"target"}
	}
	return p
}

func detect(dir string) Project {
	name := appNameFrom(filepath.Base(dir))
	switch {
	case exists(dir, "go.mod"):
		if m := firstMatch(dir, "go.mod", `(?m)^module\s+(\S+)`); m != "" {
			name = appNameFrom(filepath.Base(m))
		}
		return Project{Kind: "go", App: name,
			Build:   "CGO_ENABLED=0 go build -trimpath -o dist/" + name + " .",
			Output:  "dist",
			Command: "./" + name, Port: 3000}
	case exists(dir, "mix.exs"):
		otp := strings.ReplaceAll(name, "-", "_")
		if m := firstMatch(dir, "mix.exs", `app:\s*:([a-z_0-9]+)`); m != "" {
			otp = m
			name = appNameFrom(m)
		}
		p := Project{Kind: "elixir", App: name,
			Build:   "mix do deps.get --only prod, release --overwrite --path dist",
			Output:  "dist",
			Command: "bin/" + otp + " start",
			Port:    4000,
			// The release bundles ERTS, linked against the build system's
			// libraries: build it in the hosts' distribution.
			Builder:  "rootfs",
			Distro:   "debian/bookworm",
			Packages: []string{"elixir", "erlang-dev", "erlang-inets", "erlang-os-mon", "erlang-runtime-tools", "git", "ca-certificates"},
			Caches:   []string{"deps", "_build"},
			BuildEnv: map[string]string{"MIX_ENV": "prod"},
			// The release writes its runtime configuration there; the rest
			// of the file system is read-only for the app.
			RunEnv: map[string]string{"RELEASE_TMP": "/tmp"}}
		if firstMatch(dir, "mix.exs", `(\{:phoenix,)`) != "" {
			p.Phoenix = true
			if exists(dir, "assets") {
				p.Build = "mix do deps.get --only prod, compile, assets.deploy, release --overwrite --path dist"
			}
			// A release serves HTTP only when told to (phx.gen.release).
			p.RunEnv["PHX_SERVER"] = "true"
			// The endpoint's URL host, which LiveView checks WebSocket
			// origins against: the name in proxy.hosts.
			p.RunEnv["PHX_HOST"] = name + ".example.com"
			p.Secrets = []string{"SECRET_KEY_BASE"}
		}
		return p
	case exists(dir, "Cargo.toml"):
		bin := name
		if m := firstMatch(dir, "Cargo.toml", `(?m)^name\s*=\s*"([^"]+)"`); m != "" {
			bin = m
			name = appNameFrom(m)
		}
		return Project{Kind: "rust", App: name,
			Build:   "cargo build --release --locked && mkdir -p dist && cp target/release/" + bin + " dist/",
			Output:  "dist",
			Command: "./" + bin, Port: 3000}
	}
	return Project{Kind: "unknown", App: name, Build: "make release", Output: "dist", Command: "./" + name, Port: 3000}
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

func firstMatch(dir, file, pattern string) string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(pattern).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// appNameFrom turns a directory or module name into a valid app name.
func appNameFrom(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	for strings.Contains(name, "--") {
		name = strings.ReplaceAll(name, "--", "-")
	}
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "app-" + name
	}
	if len(name) > 32 {
		name = strings.TrimRight(name[:32], "-")
	}
	return name
}

var initTemplate = template.Must(template.New("init").Parse(`# hoist.yml: how hoist builds, ships and runs {{.App}}.
# Every field is described in docs/config.md.
version: 1

# The app's name: it names the system user (hoist-{{.App}}), the systemd
# units (hoist-{{.App}}@RELEASE.service) and /var/lib/hoist/{{.App}} on each host.
app: {{.App}}

# Hosts to deploy to: addresses, names or ~/.ssh/config aliases, each
# optionally user@host:port. ` + "`hoist lab up`" + ` prints addresses to try it locally.
hosts: []

ssh:
  # Log in as this user (root, or a user with passwordless sudo).
  user: root

build:
  # Where the build runs, always in a clean checkout of the commit (your
  # working copy is never touched): local, rootfs, container or remote;
  # docs/builders.md compares them.
{{- if .Mac}}
  # This machine is a Mac and the hosts run Linux, so the release is
  # built for Linux:
{{- if eq .Builder "container"}}
  # here in a container (Docker Desktop, OrbStack, colima or podman
  # machine) of the hosts' distribution, whose libraries the release
  # links. Or build on a Linux machine over SSH:
  #   builder: remote
  #   host: you@build-box
{{- else}}
  # Go cross-compiles (GOOS=linux below; hoist sets GOARCH from target).
{{- end}}
{{- end}}
{{- if eq .Builder "rootfs"}}
  builder: {{.Builder}}
  # The hosts' distribution, so that the release runs there.
  distro: {{.Distro}}
  packages: [{{range $i, $p := .Packages}}{{if $i}}, {{end}}{{$p}}{{end}}]
{{- else if eq .Builder "container"}}
  builder: container
  # Its distribution must be the hosts' (Debian 12, bookworm, here); for
  # more build tools, a Dockerfile FROM it: dockerfile: build.Dockerfile
  image: {{.Image}}
{{- else}}
  builder: local
{{- end}}
{{- if .Target}}
  # The hosts' OS/architecture: linux/amd64 for most, linux/arm64 for
  # Graviton (t4g) or Ampere hosts.
  target: {{.Target}}
{{- end}}
  # Guessed from the {{.Kind}} project here. The command must leave a
  # self-contained release in the output directory.
  command: {{.Build}}
  output: {{.Output}}
{{- if .BuildEnv}}
  env:
{{- range $k, $v := .BuildEnv}}
    {{$k}}: {{$v}}
{{- end}}
{{- end}}
{{- if .Caches}}
  # Kept between builds until a lockfile changes.
  caches: [{{range $i, $p := .Caches}}{{if $i}}, {{end}}{{$p}}{{end}}]
{{- end}}

run:
  # Starts the app, relative to the release directory. It must serve
  # HTTP on $PORT; $HOIST_RELEASE names the running release. Behind the
  # proxy below, each release gets its own port (this one or the next),
  # and the app need only listen on 127.0.0.1.
{{- if eq .Kind "elixir"}}
  # An OTP release: each release runs under its own node name
  # (RELEASE_NODE, set by hoist), so two can run side by side during a
  # switch, and ` + "`hoist exec -- bin/APP rpc ...`" + ` reaches the current one.
  # Its epmd and distribution port listen on 127.0.0.1 only; for nodes
  # that connect across hosts, name the private network the hosts share:
  # erlang:
  #   listen: 10.0.0.0/16
{{- end}}
{{- if .Phoenix}}
  # In config/runtime.exs, listen on loopback only:
  #   http: [ip: {127, 0, 0, 1}, port: String.to_integer(System.get_env("PORT") || "4000")]
  # and set PHX_HOST below to the name the app is served under.
{{- end}}
  command: {{.Command}}
  port: {{.Port}}
  # Plain settings; keep secrets out of this file (hoist secrets).
{{- if .RunEnv}}
  env:
{{- range $k, $v := .RunEnv}}
    {{$k}}: {{$v}}
{{- end}}
{{- else}}
  env: {}
{{- end}}

health:
  # A new release must answer GET on this path with 2xx before it
  # becomes current; otherwise the previous release keeps serving.
{{- if .Phoenix}}
  # Phoenix has no such route by default: add one to the router, e.g.
  #   get "/up", HealthController, :show   (answering 200 "ok")
{{- end}}
  path: /up
  timeout: 30s
  interval: 1s

# hoist's own edge proxy on each host: HTTPS with certificates from
# Let's Encrypt, WebSockets, and new releases switched in with no
# downtime. Name the app's host names (their DNS records pointing at the
# hosts) to turn it on:
# proxy:
#   hosts: [{{.App}}.example.com]
#   tls: acme
#   acme_email: you@example.com
{{- if .Secrets}}

# Secrets live encrypted in hoist.secrets, never in this file. Before the
# first deploy:
{{- range .Secrets}}
#   hoist secrets gen {{.}}
{{- end}}
{{- end}}

# Releases kept on each host for ` + "`hoist rollback`" + `.
keep_releases: 5
`))

// Render writes the commented hoist.yml for p.
func (p Project) Render() []byte {
	var b bytes.Buffer
	_ = initTemplate.Execute(&b, p) // fixed template over plain strings
	return b.Bytes()
}
