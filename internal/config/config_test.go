package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		Run:          Run{Command: "./hello", Port: 3000},
		Health:       Health{Path: "/up", Timeout: Duration{Duration: 30 * time.Second}, Interval: Duration{Duration: time.Second}},
		Hooks:        Hooks{Timeout: Duration{Duration: 5 * time.Minute}},
		Proxy:        Proxy{DrainTimeout: Duration{Duration: 30 * time.Second}},
		DNS:          DNS{TTL: Duration{Duration: 5 * time.Minute}},
		KeepReleases: 5,
	}
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(Duration{}, TLS{})); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(c.Build.Target, "linux/") {
		t.Errorf("default target = %q, want linux/ARCH", c.Build.Target)
	}
}

func TestParseErrorsNamePosition(t *testing.T) {
	tests := map[string]struct {
		yaml string
		want string // prefix of the error: file:line:col: message
	}{
		"unknown top-level key":   {valid + "prot: 3\n", `hoist.yml:9:1: unknown field "prot"`},
		"unknown nested key":      {strings.Replace(valid, "  output: dist", "  outptu: dist", 1), `hoist.yml:6:3: unknown field "outptu"`},
		"wrong type":              {valid + "keep_releases: many\n", "hoist.yml:9:16: "},
		"bad app name":            {strings.Replace(valid, "app: hello", "app: Hello_World", 1), `hoist.yml:2:6: app: "Hello_World" is not a valid app name`},
		"missing version":         {strings.Replace(valid, "version: 1\n", "", 1), "hoist.yml:1:1: version: missing"},
		"future version":          {strings.Replace(valid, "version: 1", "version: 2", 1), "hoist.yml:1:10: version: version 2 is not supported"},
		"missing run command":     {strings.Replace(valid, "  command: ./hello\n", "  port: 3000\n", 1), "hoist.yml:8:3: run.command: missing"},
		"bad port":                {valid + "  port: 70000\n", "hoist.yml:9:9: run.port: 70000 is not a TCP port"},
		"bad duration":            {valid + "health:\n  timeout: soon\n", `hoist.yml:10:12: health.timeout: "soon" is not a duration`},
		"output escapes":          {strings.Replace(valid, "output: dist", "output: ../x", 1), `hoist.yml:6:11: build.output: "../x" must be a directory inside the checkout`},
		"unknown builder":         {strings.Replace(valid, "build:\n", "build:\n  builder: magic\n", 1), `hoist.yml:5:12: build.builder: unknown builder "magic"`},
		"rootfs without distro":   {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n", 1), "hoist.yml:5:3: build.distro: missing"},
		"bad distro":              {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n  distro: arch\n", 1), `hoist.yml:6:11: build.distro: "arch" is not NAME/RELEASE`},
		"bad package":             {strings.Replace(valid, "build:\n", "build:\n  builder: rootfs\n  distro: debian/bookworm\n  packages: [\"a;rm\"]\n", 1), `hoist.yml:7:14: build.packages[0]: "a;rm" is not a package name`},
		"escaping cache":          {strings.Replace(valid, "build:\n", "build:\n  caches: [../x]\n", 1), `hoist.yml:5:12: build.caches[0]: "../x" is not a cache directory`},
		"remote without host":     {strings.Replace(valid, "build:\n", "build:\n  builder: remote\n", 1), "hoist.yml:5:3: build.host: missing"},
		"reserved env":            {valid + "  env:\n    PORT: 1\n", "hoist.yml:10:11: run.env.PORT: PORT is set by hoist"},
		"keep one release":        {valid + "keep_releases: 1\n", "hoist.yml:9:16: keep_releases: must be at least 2"},
		"bad host":                {strings.Replace(valid, "10.0.0.1", `"a b"`, 1), `hoist.yml:3:9: hosts[0]: "a b" is not a host`},
		"empty file":              {"", "hoist.yml: file is empty"},
		"syntax error":            {"version: 1\napp: [\n", "hoist.yml:"},
		"duplicate key":           {valid + "app: again\n", `hoist.yml:9:1: mapping key "app" already defined`},
		"bad tls mode":            {valid + "proxy:\n  hosts: [a.test]\n  tls: maybe\n", `hoist.yml:11:8: proxy.tls: "maybe" is not a TLS mode`},
		"tls without hosts":       {valid + "proxy:\n  tls: true\n", "hoist.yml:10:8: proxy.tls: TLS needs the names"},
		"unknown dns provider":    {valid + "dns:\n  provider: bind\n  zone: a.test\n", `hoist.yml:10:13: dns.provider: unknown DNS provider "bind"`},
		"dns without provider":    {valid + "dns:\n  zone: a.test\n", "hoist.yml:10:3: dns.provider: missing"},
		"dns without zone":        {valid + "dns:\n  provider: rfc2136\n", "hoist.yml:10:3: dns.zone: missing"},
		"credential in yml":       {valid + "dns:\n  provider: cloudflare\n  zone: a.test\n  settings:\n    api_token: x\n", "hoist.yml:13:16: dns.settings.api_token: api_token is a credential"},
		"bad dns address":         {valid + "dns:\n  provider: rfc2136\n  zone: a.test\n  addresses:\n    web1: [10.0.0.300]\n", `hoist.yml:13:12: dns.addresses.web1[0]: "10.0.0.300" is not an IP address`},
		"name outside the zone":   {valid + "proxy:\n  hosts: [a.test, b.example]\ndns:\n  provider: rfc2136\n  zone: a.test\n", "hoist.yml:10:19: proxy.hosts[1]: b.example is not in dns.zone a.test"},
		"wildcard by http-01":     {valid + "proxy:\n  hosts: [\"*.a.test\"]\n  tls: acme\n  challenge: http-01\n", `hoist.yml:10:11: proxy.hosts[0]: *.a.test: a wildcard name can only be checked by DNS-01`},
		"wildcard without dns":    {valid + "proxy:\n  hosts: [\"*.a.test\"]\n  tls: acme\n", "hoist.yml:10:11: proxy.hosts[0]: *.a.test needs the DNS-01 challenge, which needs a DNS provider"},
		"bad challenge":           {valid + "proxy:\n  hosts: [a.test]\n  tls: acme\n  challenge: dns\n", `hoist.yml:12:14: proxy.challenge: "dns" is not a challenge`},
		"challenge of a stranger": {valid + "proxy:\n  hosts: [a.test]\n  tls: acme\n  challenges:\n    b.test: dns-01\n", "hoist.yml:13:5: proxy.challenges.b.test: b.test is not one of proxy.hosts"},
		"internal with acme ca":   {valid + "proxy:\n  hosts: [a.test]\n  tls: internal\n  acme_ca: https://ca.test/dir\n", "hoist.yml:12:12: proxy.acme_ca: tls: internal issues"},
	}
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

func TestDetectAndRenderParse(t *testing.T) {
	tests := map[string]struct {
		file, content string
		want          Project
	}{
		"go": {"go.mod", "module github.com/acme/Web_Shop\n\ngo 1.22\n", Project{Kind: "go", App: "web-shop",
			Build: "CGO_ENABLED=0 go build -trimpath -o dist/web-shop .", Output: "dist", Command: "./web-shop"}},
		"elixir": {"mix.exs", "def project do\n [app: :correct_horse,\n version: \"0.1.0\"]\n", Project{Kind: "elixir", App: "correct-horse",
			Build: "mix do deps.get --only prod, release --overwrite --path dist", Output: "dist", Command: "bin/correct_horse start",
			Builder: "rootfs", Distro: "debian/bookworm", Packages: []string{"elixir", "erlang-dev", "erlang-inets", "erlang-os-mon", "erlang-runtime-tools", "git", "ca-certificates"},
			Caches: []string{"deps", "_build"}, BuildEnv: map[string]string{"MIX_ENV": "prod"}, RunEnv: map[string]string{"RELEASE_TMP": "/tmp"}}},
		"rust": {"Cargo.toml", "[package]\nname = \"api_server\"\n", Project{Kind: "rust", App: "api-server",
			Build: "cargo build --release --locked && mkdir -p dist && cp target/release/api_server dist/", Output: "dist", Command: "./api_server"}},
		"unknown": {"README", "hi", Project{Kind: "unknown", App: "app-1", Build: "make release", Output: "dist", Command: "./app-1"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "1")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			p := Detect(dir)
			if diff := cmp.Diff(tt.want, p); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
			c, err := Parse("hoist.yml", p.Render())
			if err != nil {
				t.Fatalf("rendered hoist.yml does not parse: %v\n%s", err, p.Render())
			}
			if c.App != p.App || c.Build.Command != p.Build || c.Run.Command != p.Command || !cmp.Equal(c.Build.Caches, p.Caches) || c.Run.Env["RELEASE_TMP"] != p.RunEnv["RELEASE_TMP"] {
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
			if key == "" {
				continue
			}
			full := prefix + key
			if !strings.Contains(string(doc), "`"+full+"`") {
				t.Errorf("docs/config.md does not document `%s`", full)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration{}) {
				walk(full+".", f.Type)
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
