package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hoistdev/hoist/internal/goldentest"
)

const valid = `version: 1
app: hello
hosts: [10.0.0.1, deploy@web2:2222]
build:
  command: go build -o dist/hello .
  output: dist
run:
  command: ./hello
`

func TestParseValidAppliesDefaults(t *testing.T) {
	c, err := Parse("hoist.yml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Version: 1, App: "hello", Hosts: []string{"10.0.0.1", "deploy@web2:2222"},
		SSH:          SSH{Parallel: 8},
		Build:        Build{Builder: "local", Command: "go build -o dist/hello .", Output: "dist", Target: c.Build.Target},
		Run:          Run{Command: "./hello", Port: 3000, Erlang: Erlang{Listen: "loopback"}},
		Health:       Health{Path: "/up", Timeout: Duration{Duration: 30 * time.Second}, Interval: Duration{Duration: time.Second}},
		Hooks:        Hooks{Timeout: Duration{Duration: 5 * time.Minute}},
		Proxy:        Proxy{DrainTimeout: Duration{Duration: 30 * time.Second}},
		Deploy:       Deploy{Canary: Canary{Watch: Duration{Duration: time.Minute}}, Ship: ShipPush},
		DNS:          DNS{TTL: Duration{Duration: 5 * time.Minute}},
		KeepReleases: 5,
	}
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(Duration{}, TLS{}, Size{}, Amount{})); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(c.Build.Target, "linux/") {
		t.Errorf("default target = %q, want linux/ARCH", c.Build.Target)
	}
}

func TestParseErrorsNamePosition(t *testing.T) {
	tests := map[string]parseError{
		"unknown top-level key":    {valid + "prot: 3\n", `hoist.yml:9:1: unknown field "prot"`},
		"unknown nested key":       {strings.Replace(valid, "  output: dist", "  outptu: dist", 1), `hoist.yml:6:3: unknown field "outptu"`},
		"wrong type":               {valid + "keep_releases: many\n", "hoist.yml:9:16: "},
		"bad app name":             {strings.Replace(valid, "app: hello", "app: Hello_World", 1), `hoist.yml:2:6: app: "Hello_World" is not a valid app name`},
		"reserved app name":        {strings.Replace(valid, "app: hello", "app: proxy", 1), `hoist.yml:2:6: app: "proxy" is reserved: an app of that name would take hoist's own user hoist-proxy`},
		"login user of hoist's":    {valid + "infra:\n  provider: lab\n  user: hoist-web\n", `hoist.yml:11:9: infra.user: "hoist-web" is a name hoist gives its own system users`},
		"missing version":          {strings.Replace(valid, "version: 1\n", "", 1), "hoist.yml:1:1: version: missing"},
		"future version":           {strings.Replace(valid, "version: 1", "version: 2", 1), "hoist.yml:1:10: version: version 2 is not supported"},
		"missing run command":      {strings.Replace(valid, "  command: ./hello\n", "  port: 3000\n", 1), "hoist.yml:8:3: run.command: missing"},
		"bad port":                 {valid + "  port: 70000\n", "hoist.yml:9:9: run.port: 70000 is not a TCP port"},
		"bad duration":             {valid + "health:\n  timeout: soon\n", `hoist.yml:10:12: health.timeout: "soon" is not a duration`},
		"output escapes":           {strings.Replace(valid, "output: dist", "output: ../x", 1), `hoist.yml:6:11: build.output: "../x" must be a directory inside the checkout`},
		"unknown builder":          {strings.Replace(valid, "build:\n", "build:\n  builder: magic\n", 1), `hoist.yml:5:12: build.builder: unknown builder "magic"`},
		"rootfs without distro":    {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n", 1), "hoist.yml:5:3: build.distro: missing"},
		"bad distro":               {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n  distro: arch\n", 1), `hoist.yml:6:11: build.distro: "arch" is not NAME/RELEASE`},
		"bad package":              {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n  distro: debian/bookworm\n  packages: [\"a;rm\"]\n", 1), `hoist.yml:7:14: build.packages[0]: "a;rm" is not a package name`},
		"escaping cache":           {strings.Replace(valid, "build:\n", "build:\n  caches: [../x]\n", 1), `hoist.yml:5:12: build.caches[0]: "../x" is not a cache directory`},
		"remote without host":      {strings.Replace(valid, "build:\n", "build:\n  builder: remote\n", 1), "hoist.yml:5:3: build.host: missing"},
		"reserved env":             {valid + "  env:\n    PORT: 1\n", "hoist.yml:10:11: run.env.PORT: PORT is set by hoist"},
		"node name in env":         {valid + "  env:\n    RELEASE_NODE: app\n", "hoist.yml:10:19: run.env.RELEASE_NODE: RELEASE_NODE is set by hoist"},
		"cookie in env":            {valid + "  env:\n    RELEASE_COOKIE: monster\n", "hoist.yml:10:21: run.env.RELEASE_COOKIE: RELEASE_COOKIE is a secret"},
		"erlang address":           {valid + "  erlang:\n    listen: 10.0.0.5\n", `hoist.yml:10:13: run.erlang.listen: "10.0.0.5" is neither loopback nor a private IPv4 network`},
		"erlang on all":            {valid + "  erlang:\n    listen: 0.0.0.0/0\n", `hoist.yml:10:13: run.erlang.listen: "0.0.0.0/0" is neither`},
		"erlang on a public net":   {valid + "  erlang:\n    listen: 203.0.113.0/24\n", `hoist.yml:10:13: run.erlang.listen: "203.0.113.0/24" is neither`},
		"erlang wider than 10/8":   {valid + "  erlang:\n    listen: 10.0.0.0/7\n", `hoist.yml:10:13: run.erlang.listen: "10.0.0.0/7" is neither`},
		"keep one release":         {valid + "keep_releases: 1\n", "hoist.yml:9:16: keep_releases: must be at least 2"},
		"bad host":                 {strings.Replace(valid, "10.0.0.1", `"a b"`, 1), `hoist.yml:3:9: hosts[0]: "a b" is not a host`},
		"host listed twice":        {strings.Replace(valid, "deploy@web2:2222", "10.0.0.1", 1), `hoist.yml:3:19: hosts[1]: 10.0.0.1 is listed twice`},
		"empty file":               {"", "hoist.yml: file is empty"},
		"syntax error":             {"version: 1\napp: [\n", "hoist.yml:"},
		"duplicate key":            {valid + "app: again\n", `hoist.yml:9:1: mapping key "app" already defined`},
		"bad max_in_flight":        {valid + "deploy:\n  max_in_flight: 0\n", `hoist.yml:10:18: deploy.max_in_flight: "0" is not a number of hosts`},
		"bad percentage":           {valid + "deploy:\n  max_in_flight: 150%\n", `hoist.yml:10:18: deploy.max_in_flight: "150%" is not`},
		"negative canary":          {valid + "deploy:\n  canary: {hosts: -1}\n", `hoist.yml:10:19: deploy.canary.hosts: must be 0`},
		"bad canary watch":         {valid + "deploy:\n  canary: {hosts: 1, watch: long}\n", `hoist.yml:10:29: deploy.canary.watch: "long" is not a duration`},
		"bad tls mode":             {valid + "proxy:\n  hosts: [a.test]\n  tls: maybe\n", `hoist.yml:11:8: proxy.tls: "maybe" is not a TLS mode`},
		"tls without hosts":        {valid + "proxy:\n  tls: true\n", "hoist.yml:10:8: proxy.tls: TLS needs the names"},
		"internal with acme ca":    {valid + "proxy:\n  hosts: [a.test]\n  tls: internal\n  acme_ca: https://ca.test/dir\n", "hoist.yml:12:12: proxy.acme_ca: tls: internal issues"},
		"infra without provider":   {valid + "infra:\n  count: 2\n", "hoist.yml:10:3: infra.provider: missing"},
		"unknown provider":         {valid + "infra:\n  provider: gcp\n", `hoist.yml:10:13: infra.provider: unknown provider "gcp"`},
		"aws without region":       {valid + "infra:\n  provider: aws\n", "hoist.yml:10:3: infra.region: missing"},
		"bad region":               {valid + "infra:\n  provider: aws\n  region: moon\n", `hoist.yml:11:11: infra.region: "moon" is not an AWS region`},
		"zone of another region":   {valid + "infra:\n  provider: aws\n  region: eu-west-1\n  zones: [us-east-1a]\n", `hoist.yml:12:11: infra.zones[0]: "us-east-1a" is not a zone of eu-west-1`},
		"alb in one zone":          {valid + "proxy:\n  hosts: [a.test]\ninfra:\n  provider: aws\n  region: eu-west-1\n  zones: [eu-west-1a]\n  balancer: alb\n", "hoist.yml:14:10: infra.zones: an ALB needs subnets in at least two zones"},
		"alb without names":        {valid + "infra:\n  provider: aws\n  region: eu-west-1\n  balancer: alb\n", "hoist.yml:12:13: infra.balancer: an ALB serves HTTPS"},
		"alb with the proxy's tls": {valid + "proxy:\n  hosts: [a.test]\n  tls: acme\ninfra:\n  provider: aws\n  region: eu-west-1\n  balancer: alb\n", "hoist.yml:11:8: proxy.tls: behind an ALB"},
		"alb on the lab, no names": {valid + "infra:\n  provider: lab\n  balancer: alb\n", "hoist.yml:11:13: infra.balancer: the lab's balancer serves HTTPS"},
		"alb on the lab, an ARN":   {valid + "proxy:\n  hosts: [a.test]\ninfra:\n  provider: lab\n  balancer: alb\n  certificate: arn:aws:acm:x\n", "hoist.yml:14:16: infra.certificate: the lab's balancer gets"},
		"hard-coded bad image":     {valid + "infra:\n  provider: aws\n  region: eu-west-1\n  image: debian\n", `hoist.yml:12:10: infra.image: "debian" is not an image`},
		"bad ssh network":          {valid + "infra:\n  provider: lab\n  ssh_from: [10.0.0.1]\n", `hoist.yml:11:14: infra.ssh_from[0]: "10.0.0.1" is not a network`},
		"too many hosts":           {valid + "infra:\n  provider: lab\n  count: 99\n", "hoist.yml:11:10: infra.count: 99 hosts"},
		"no hosts":                 {valid + "infra:\n  provider: lab\n  count: 0\n", "hoist.yml:11:10: infra.count: 0 hosts"},
		"negative hosts":           {valid + "infra:\n  provider: lab\n  count: -1\n", "hoist.yml:11:10: infra.count: -1 hosts"},
		"error pages outside":      {valid + "proxy:\n  hosts: [a.test]\n  error_pages: ../pages\n", `hoist.yml:11:16: proxy.error_pages: "../pages" must be a directory of the repository`},
		"error pages, no proxy":    {valid + "proxy:\n  error_pages: pages\n", "hoist.yml:10:16: proxy.error_pages: the pages are the proxy's answers"},
		"root login":               {valid + "infra:\n  provider: lab\n  user: root\n", `hoist.yml:11:9: infra.user: "root" is not a login user`},
		"bad body size":            {valid + "proxy:\n  hosts: [a.test]\n  max_body_bytes: 10 furlongs\n", `hoist.yml:11:19: proxy.max_body_bytes: "10 furlongs" is not a size`},
		"negative body size":       {valid + "proxy:\n  hosts: [a.test]\n  max_body_bytes: -1\n", `hoist.yml:11:19: proxy.max_body_bytes: "-1" is not a size`},
		"unknown dns provider":     {valid + "dns:\n  provider: bind\n  zone: a.test\n", `hoist.yml:10:13: dns.provider: unknown DNS provider "bind"`},
		"dns without provider":     {valid + "dns:\n  zone: a.test\n", "hoist.yml:10:3: dns.provider: missing"},
		"dns without zone":         {valid + "dns:\n  provider: rfc2136\n", "hoist.yml:10:3: dns.zone: missing"},
		"credential in yml":        {valid + "dns:\n  provider: cloudflare\n  zone: a.test\n  settings:\n    api_token: x\n", "hoist.yml:13:16: dns.settings.api_token: api_token is a credential"},
		"bad dns address":          {valid + "dns:\n  provider: rfc2136\n  zone: a.test\n  addresses:\n    web1: [10.0.0.300]\n", `hoist.yml:13:12: dns.addresses.web1[0]: "10.0.0.300" is not an IP address`},
		"name outside the zone":    {valid + "proxy:\n  hosts: [a.test, b.example]\ndns:\n  provider: rfc2136\n  zone: a.test\n", "hoist.yml:10:19: proxy.hosts[1]: b.example is not in dns.zone a.test, where hoist keeps the names' records: set dns.zone to a zone that holds every name of proxy.hosts, or dns.records: false to keep the names' records yourself"},
		// dns.records: false alone would lead to the DNS-01 error below.
		"outside the zone, acme":  {valid + "proxy:\n  hosts: [a.test, b.example]\n  tls: acme\ndns:\n  provider: rfc2136\n  zone: a.test\n", "hoist.yml:10:19: proxy.hosts[1]: b.example is not in dns.zone a.test, where hoist keeps the names' records: set dns.zone to a zone that holds every name of proxy.hosts, or dns.records: false to keep the names' records yourself and `challenges: {b.example: http-01}` under proxy"},
		"apex behind an alb":      {valid + "proxy:\n  hosts: [a.test]\ndns:\n  provider: rfc2136\n  zone: a.test\ninfra:\n  provider: aws\n  region: eu-west-1\n  balancer: alb\n", "hoist.yml:10:11: proxy.hosts[0]: a.test is the zone's apex"},
		"wildcard by http-01":     {valid + "proxy:\n  hosts: [\"*.a.test\"]\n  tls: acme\n  challenge: http-01\n", `hoist.yml:10:11: proxy.hosts[0]: *.a.test: a wildcard name can only be checked by DNS-01`},
		"wildcard without dns":    {valid + "proxy:\n  hosts: [\"*.a.test\"]\n  tls: acme\n", "hoist.yml:10:11: proxy.hosts[0]: *.a.test needs the DNS-01 challenge, which needs a DNS provider"},
		"bad challenge":           {valid + "proxy:\n  hosts: [a.test]\n  tls: acme\n  challenge: dns\n", `hoist.yml:12:14: proxy.challenge: "dns" is not a challenge`},
		"trusted proxy not CIDR":  {valid + "proxy:\n  hosts: [a.test]\n  trusted_proxies: [10.0.0.0/8, cdn.example]\n", `hoist.yml:11:33: proxy.trusted_proxies[1]: "cdn.example" is not a network`},
		"trusting everyone":       {valid + "proxy:\n  hosts: [a.test]\n  trusted_proxies: [0.0.0.0/0]\n", "hoist.yml:11:21: proxy.trusted_proxies[0]: 0.0.0.0/0 is every address"},
		"trusted proxy, no proxy": {valid + "proxy:\n  trusted_proxies: [10.0.0.0/8]\n", "hoist.yml:10:21: proxy.trusted_proxies[0]: only hoist's proxy reads"},
		"challenge of a stranger": {valid + "proxy:\n  hosts: [a.test]\n  tls: acme\n  challenges:\n    b.test: dns-01\n", "hoist.yml:13:5: proxy.challenges.b.test: b.test is not one of proxy.hosts"},
	}
	testParseErrors(t, tests)
}

// parseError is a hoist.yml that Parse refuses, and the start of its
// error: file:line:col: message.
type parseError struct {
	yaml string
	want string
}

// testParseErrors checks that Parse refuses each of tests with a
// *config.Error that starts as the test wants.
func testParseErrors(t *testing.T, tests map[string]parseError) {
	t.Helper()
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("hoist.yml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error starting %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T does not carry a *config.Error", err)
			}
		})
	}
}

func TestTLSModes(t *testing.T) {
	tests := map[string]struct {
		value string
		want  string
	}{
		"unset":    {"", ""},
		"false":    {"false", ""},
		"true":     {"true", TLSACME},
		"acme":     {"acme", TLSACME},
		"quoted":   {`"internal"`, TLSInternal},
		"internal": {"internal", TLSInternal},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			y := valid + "proxy:\n  hosts: [a.test]\n"
			if tt.value != "" {
				y += "  tls: " + tt.value + "\n"
			}
			c, err := Parse("hoist.yml", []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if c.Proxy.TLS.Mode != tt.want || c.Proxy.TLS.On() != (tt.want != "") {
				t.Errorf("tls: %s gave mode %q, want %q", tt.value, c.Proxy.TLS.Mode, tt.want)
			}
		})
	}
}

func TestInfraDefaults(t *testing.T) {
	tests := map[string]struct {
		infra string
		want  Infra
	}{
		"none": {"", Infra{}},
		"lab": {"infra:\n  provider: lab\n", Infra{Provider: "lab", Env: "production", InstanceType: "t3.micro", Count: 1, DiskGB: 8,
			Image: "debian-12", Balancer: "none", User: "admin"}},
		"aws alone": {"infra:\n  provider: aws\n  region: eu-west-1\n", Infra{Provider: "aws", Env: "production", Region: "eu-west-1",
			Zones: []string{"eu-west-1a"}, InstanceType: "t3.micro", Count: 1, DiskGB: 8, Image: "debian-12", Balancer: "none", User: "admin"}},
		"aws behind an alb": {"proxy:\n  hosts: [a.test]\ninfra:\n  provider: aws\n  region: us-east-1\n  balancer: alb\n  env: staging\n  instance_type: t2.micro\n  image: ssm:/aws/service/x\n",
			Infra{Provider: "aws", Env: "staging", Region: "us-east-1", Zones: []string{"us-east-1a", "us-east-1b"}, InstanceType: "t2.micro",
				Count: 1, DiskGB: 8, Image: "ssm:/aws/service/x", Balancer: "alb", User: "admin"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("hoist.yml", []byte(valid+tt.infra))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Infra); diff != "" {
				t.Errorf("infra (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSizes(t *testing.T) {
	tests := map[string]struct {
		value string
		want  int64
	}{
		"unset":          {"", 0},
		"bytes":          {"1048576", 1 << 20},
		"KiB":            {"512KiB", 512 << 10},
		"MiB with space": {"64 MiB", 64 << 20},
		"GiB":            {"2GiB", 2 << 30},
		"MB is decimal":  {"1MB", 1_000_000},
		"quoted":         {`"10MiB"`, 10 << 20},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			y := valid + "proxy:\n  hosts: [a.test]\n"
			if tt.value != "" {
				y += "  max_body_bytes: " + tt.value + "\n"
			}
			c, err := Parse("hoist.yml", []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if c.Proxy.MaxBodyBytes.Bytes != tt.want {
				t.Errorf("max_body_bytes: %s gave %d, want %d", tt.value, c.Proxy.MaxBodyBytes.Bytes, tt.want)
			}
		})
	}
}

func TestChallengeFor(t *testing.T) {
	const tls = "proxy:\n  hosts: [a.test, \"*.w.a.test\", cdn.a.test]\n  tls: acme\n"
	const rfc = "dns:\n  provider: rfc2136\n  zone: a.test\n"
	tests := map[string]struct {
		yaml string
		want map[string]string
	}{
		"auto with records kept": {tls + rfc, map[string]string{"a.test": ChallengeHTTP, "*.w.a.test": ChallengeDNS, "cdn.a.test": ChallengeHTTP}},
		"auto without records":   {tls + rfc + "  records: false\n", map[string]string{"a.test": ChallengeDNS, "*.w.a.test": ChallengeDNS, "cdn.a.test": ChallengeDNS}},
		"dns-01 for all":         {tls + "  challenge: dns-01\n" + rfc, map[string]string{"a.test": ChallengeDNS, "*.w.a.test": ChallengeDNS, "cdn.a.test": ChallengeDNS}},
		"per name":               {tls + "  challenges:\n    cdn.a.test: dns-01\n" + rfc, map[string]string{"a.test": ChallengeHTTP, "*.w.a.test": ChallengeDNS, "cdn.a.test": ChallengeDNS}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("hoist.yml", []byte(valid+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, h := range c.Proxy.Hosts {
				got[h] = c.ChallengeFor(h)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("challenges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMissingFileHasHint(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "hoist.yml"))
	if err == nil || !strings.Contains(err.Error(), "no hoist.yml") {
		t.Fatalf("err = %v, want a missing-file error", err)
	}
}

// TestDetectAndRenderParse guesses each kind of project, renders its
// hoist.yml (compared with testdata/init/KIND.golden; -update rewrites
// them) and parses it back.
func TestDetectAndRenderParse(t *testing.T) {
	elixirPackages := []string{"elixir", "erlang-dev", "erlang-inets", "erlang-os-mon", "erlang-runtime-tools", "git", "ca-certificates"}
	tests := map[string]struct {
		files map[string]string
		want  Project
	}{
		// On a Mac (the names ending in -macos): Go cross-compiles,
		// Elixir and Rust build in a container of the hosts' distribution.
		"go-macos": {map[string]string{"go.mod": "module github.com/acme/Web_Shop\n\ngo 1.22\n"}, Project{Kind: "go", App: "web-shop",
			Build: "CGO_ENABLED=0 GOOS=linux go build -trimpath -o dist/web-shop .", Output: "dist", Command: "./web-shop", Port: 3000,
			Mac: true, Target: "linux/amd64"}},
		"phoenix-macos": {map[string]string{
			"mix.exs":       "def project do\n [app: :correct_horse]\n defp deps do\n [{:phoenix, \"~> 1.7.14\"}]\n",
			"assets/app.js": "",
		}, Project{Kind: "elixir", App: "correct-horse",
			Build: "mix do deps.get --only prod, compile, assets.deploy, release --overwrite --path dist", Output: "dist", Command: "bin/correct_horse start",
			Builder: "container", Image: "docker.io/hexpm/elixir:1.17.3-erlang-27.2-debian-bookworm-20241202", Port: 4000, Phoenix: true, Secrets: []string{"SECRET_KEY_BASE"},
			Caches: []string{"deps", "_build"}, BuildEnv: map[string]string{"MIX_ENV": "prod"}, Mac: true, Target: "linux/amd64",
			RunEnv: map[string]string{"RELEASE_TMP": "/tmp", "PHX_SERVER": "true", "PHX_HOST": "correct-horse.example.com"}}},
		"rust-macos": {map[string]string{"Cargo.toml": "[package]\nname = \"api_server\"\n"}, Project{Kind: "rust", App: "api-server",
			Build: "cargo build --release --locked && mkdir -p dist && cp target/release/api_server dist/", Output: "dist", Command: "./api_server", Port: 3000,
			Builder: "container", Image: "docker.io/library/rust:1-bookworm", Caches: []string{"target"}, Mac: true, Target: "linux/amd64"}},
		"go": {map[string]string{"go.mod": "module github.com/acme/Web_Shop\n\ngo 1.22\n"}, Project{Kind: "go", App: "web-shop",
			Build: "CGO_ENABLED=0 go build -trimpath -o dist/web-shop .", Output: "dist", Command: "./web-shop", Port: 3000}},
		"elixir": {map[string]string{"mix.exs": "def project do\n [app: :correct_horse,\n version: \"0.1.0\"]\n"}, Project{Kind: "elixir", App: "correct-horse",
			Build: "mix do deps.get --only prod, release --overwrite --path dist", Output: "dist", Command: "bin/correct_horse start",
			Builder: "rootfs", Distro: "debian/bookworm", Packages: elixirPackages, Port: 4000,
			Caches: []string{"deps", "_build"}, BuildEnv: map[string]string{"MIX_ENV": "prod"}, RunEnv: map[string]string{"RELEASE_TMP": "/tmp"}}},
		"phoenix": {map[string]string{
			"mix.exs":       "def project do\n [app: :correct_horse]\n defp deps do\n [{:phoenix, \"~> 1.7.14\"}]\n",
			"assets/app.js": "",
		}, Project{Kind: "elixir", App: "correct-horse",
			Build: "mix do deps.get --only prod, compile, assets.deploy, release --overwrite --path dist", Output: "dist", Command: "bin/correct_horse start",
			Builder: "rootfs", Distro: "debian/bookworm", Packages: elixirPackages, Port: 4000, Phoenix: true, Secrets: []string{"SECRET_KEY_BASE"},
			Caches: []string{"deps", "_build"}, BuildEnv: map[string]string{"MIX_ENV": "prod"},
			RunEnv: map[string]string{"RELEASE_TMP": "/tmp", "PHX_SERVER": "true", "PHX_HOST": "correct-horse.example.com"}}},
		"rust": {map[string]string{"Cargo.toml": "[package]\nname = \"api_server\"\n"}, Project{Kind: "rust", App: "api-server",
			Build: "cargo build --release --locked && mkdir -p dist && cp target/release/api_server dist/", Output: "dist", Command: "./api_server", Port: 3000}},
		"unknown": {map[string]string{"README": "hi"}, Project{Kind: "unknown", App: "app-1", Build: "make release", Output: "dist", Command: "./app-1", Port: 3000}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "1")
			for f, content := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			goos := "linux"
			if strings.HasSuffix(name, "-macos") {
				goos = "darwin"
			}
			p := DetectFor(dir, goos)
			if diff := cmp.Diff(tt.want, p); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
			rendered := p.Render()
			goldentest.Check(t, filepath.Join("testdata", "init", name+".golden"), rendered)
			c, err := Parse("hoist.yml", rendered)
			if err != nil {
				t.Fatalf("rendered hoist.yml does not parse: %v\n%s", err, rendered)
			}
			if p.Target != "" && c.Build.Target != p.Target || p.Image != "" && c.Build.Image != p.Image || p.Builder != "" && c.Build.Builder != p.Builder {
				t.Errorf("rendered config lost the build settings: %+v", c.Build)
			}
			if c.App != p.App || c.Build.Command != p.Build || c.Run.Command != p.Command || c.Run.Port != p.Port ||
				!cmp.Equal(c.Build.Caches, p.Caches) || !cmp.Equal(c.Run.Env, p.RunEnv, cmpopts.EquateEmpty()) {
				t.Errorf("rendered config lost values: %+v", c)
			}
		})
	}
}

// TestDocsCoverEveryField keeps docs/config.md in step with the structs.
func TestDocsCoverEveryField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if key == "" || key == "-" {
				continue
			}
			full := prefix + key
			if !strings.Contains(string(doc), "`"+full+"`") {
				t.Errorf("docs/config.md does not document `%s`", full)
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration{}):
				walk(full+".", f.Type)
			case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Struct:
				// A map of named entries (accessories.NAME.service).
				walk(full+".NAME.", f.Type.Elem())
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("version: 1\napp: x\nhealth: {timeout: 1s}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yml", data)
		if err == nil && (c.Version != 1 || c.App == "" || c.KeepReleases < 2) {
			t.Fatalf("Parse accepted an invalid config: %+v", c)
		}
	})
}

func TestDeployAmounts(t *testing.T) {
	tests := map[string]struct {
		yaml string
		of12 int // hosts at once out of 12
	}{
		"unset: all at once":  {"", 12},
		"a number":            {"deploy:\n  max_in_flight: 3\n", 3},
		"a percentage":        {"deploy:\n  max_in_flight: 25%\n", 3},
		"a small percentage":  {"deploy:\n  max_in_flight: \"1%\"\n", 1},
		"more than there are": {"deploy:\n  max_in_flight: 40\n", 12},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("hoist.yml", []byte(valid+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := 12
			if c.Deploy.MaxInFlight.Set() {
				got = c.Deploy.MaxInFlight.Of(12)
			}
			if got != tt.of12 {
				t.Errorf("%d of 12 hosts at once, want %d", got, tt.of12)
			}
			if !c.Deploy.RelayOn() || c.Deploy.Canary.Watch.Duration != time.Minute {
				t.Errorf("defaults: %+v", c.Deploy)
			}
		})
	}
}

// FuzzSize: a size is refused with an error, or read as a positive
// number of bytes that its plain form reads back to.
func FuzzSize(f *testing.F) {
	for _, s := range []string{"1048576", "512KiB", "64 MiB", "1GB", "0", "-1", "9223372036854775807GiB", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s := Size{raw: raw}
		if s.parse() != nil {
			return
		}
		if raw != "" && s.Bytes <= 0 {
			t.Fatalf("%q read as %d bytes", raw, s.Bytes)
		}
		back := Size{raw: strconv.FormatInt(s.Bytes, 10)}
		if raw != "" && (back.parse() != nil || back.Bytes != s.Bytes) {
			t.Fatalf("%q read as %d, which reads back as %d", raw, s.Bytes, back.Bytes)
		}
	})
}

// run.erlang.listen takes loopback or a network inside a private one.
func TestErlangListenAccepts(t *testing.T) {
	for _, listen := range []string{"loopback", "10.0.0.0/16", "172.16.5.0/24", "192.168.1.0/24", "100.64.0.0/10", "10.213.7.0/24"} {
		t.Run(listen, func(t *testing.T) {
			c, err := Parse("hoist.yml", []byte(valid+"  erlang:\n    listen: "+listen+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Run.Erlang.Listen != listen {
				t.Errorf("listen = %q, want %q", c.Run.Erlang.Listen, listen)
			}
		})
	}
}

// TestOutsideTheZoneHintWorks: what the error for a name outside the
// zone tells to write is a config that loads.
func TestOutsideTheZoneHintWorks(t *testing.T) {
	yml := "version: 1\napp: a\nbuild: {command: make, output: dist}\nrun: {command: ./a}\n" +
		"proxy:\n  hosts: [a.test, b.example]\n  tls: acme\n  challenges: {b.example: http-01}\ndns:\n  provider: rfc2136\n  zone: a.test\n  records: false\n"
	c, err := Parse("hoist.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if c.ChallengeFor("b.example") != ChallengeHTTP || c.ChallengeFor("a.test") != ChallengeDNS {
		t.Errorf("challenges: b.example %s, a.test %s", c.ChallengeFor("b.example"), c.ChallengeFor("a.test"))
	}
}
