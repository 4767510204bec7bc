package systemd

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

var hello = App{
	Name: "hello", User: "hoist-hello", Root: "/var/lib/hoist/hello", Command: "./hello --greeting 100%",
	Port: 3000, Env: map[string]string{"LOG_LEVEL": "info", "QUOTE": `say "hi" \ 50%`},
	EnvFile: "/var/lib/hoist/hello/shared/env", HoistBin: "/usr/local/bin/hoist",
}

func TestTemplateGolden(t *testing.T) {
	b, err := Template(hello)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hello@.service", b)
}

func TestBootGolden(t *testing.T) {
	b, err := Boot(hello)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hello.service", b)
}

// hostile is an app whose command and names hold everything systemd
// would otherwise read as syntax.
var hostile = App{
	Name: "hostile", User: "hoist-hostile", Root: "/var/lib/hoist/hostile",
	Command: `bin/my%app --pct 100% --env $HOME ${PATH} --quote "a" 'b' --back \n\ --semi ; --spec %i%n`,
	Port:    3000, Env: map[string]string{"A": "%h $HOME"}, EnvFile: "/var/lib/hoist/hostile/shared/env",
	HoistBin: "/usr/local/bin/hoist",
}

func TestHostileTemplateGolden(t *testing.T) {
	b, err := Template(hostile)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hostile@.service", b)
}

var proxy = Proxy{
	HoistBin: "/usr/local/bin/hoist", User: "hoist-proxy", RuntimeDir: "hoist", StateDir: "hoist/proxy",
	Control: "/run/hoist/proxy.sock",
	Args:    []string{"--state", "/var/lib/hoist/proxy/state.json", "--metrics", "127.0.0.1:9180"},
}

func TestProxyServiceGolden(t *testing.T) {
	b, err := ProxyService(proxy)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hoist-proxy.service", b)
}

// Values set by hand for the proxy (an ACME CA URL with a space, %
// and $) stay single arguments, as written.
func TestHostileProxyServiceGolden(t *testing.T) {
	p := proxy
	p.HoistBin = "/opt/hoist %h/bin dir/hoist"
	p.Control = "/run/hoist/proxy $sock"
	p.Args = []string{"--acme-ca", "https://ca.test/dir?x=%41 b&y=$Z", "--acme-email", `"ops" <ops@example.com>`, "--tls-default-name", ";"}
	b, err := ProxyService(p)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hostile-proxy.service", b)
}

func TestExecStart(t *testing.T) {
	tests := map[string]struct {
		argv []string
		want string
	}{
		"plain":              {[]string{"/usr/bin/app", "--port", "3000"}, "/usr/bin/app --port 3000"},
		"bare name":          {[]string{"node", "server.js"}, "node server.js"},
		"percent":            {[]string{"/bin/app", "50%", "%i"}, "/bin/app 50%% %%i"},
		"dollar":             {[]string{"/bin/app", "$HOME", "${A}", "$$"}, "/bin/app $$HOME $${A} $$$$"},
		"space":              {[]string{"/bin/app", "a b"}, `/bin/app "a b"`},
		"quotes":             {[]string{"/bin/app", `say "hi"`, "it's"}, `/bin/app "say \"hi\"" "it's"`},
		"backslash":          {[]string{"/bin/app", `a\b`, `\`}, `/bin/app "a\\b" "\\"`},
		"empty":              {[]string{"/bin/app", ""}, `/bin/app ""`},
		"separator":          {[]string{"/bin/app", ";", "a;b"}, `/bin/app ";" a;b`},
		"control":            {[]string{"/bin/app", "a\nb\tc\x01"}, `/bin/app "a\nb\tc\x01"`},
		"unicode":            {[]string{"/bin/app", "héllo", "\ufffd"}, "/bin/app héllo \ufffd"},
		"dash argument":      {[]string{"/bin/app", "-v", "@x", "+y"}, "/bin/app -v @x +y"},
		"program with space": {[]string{"/opt/my app/run"}, `"/opt/my app/run"`},
		"program percent":    {[]string{"/opt/100%/run"}, "/opt/100%%/run"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ExecStart(tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ExecStart(%q) = %s, want %s", tt.argv, got, tt.want)
			}
		})
	}
}

// A program systemd would read differently than written is refused.
func TestExecStartRefuses(t *testing.T) {
	tests := map[string][]string{
		"nothing":       nil,
		"empty program": {""},
		"prefix dash":   {"-app"},
		"prefix at":     {"@app"},
		"prefix colon":  {":app"},
		"prefix plus":   {"+app"},
		"prefix bang":   {"!app"},
		"prefix pipe":   {"|app"},
		"relative":      {"bin/app"},
		"directory":     {"/bin/"},
		"quote":         {`/bin/a"b`},
		"backslash":     {`/bin/a\b`},
		"dollar":        {"/bin/$app"},
		"newline":       {"/bin/a\nb"},
		"NUL argument":  {"/bin/app", "a\x00b"},
		"not UTF-8":     {"/bin/app", "a\xffb"},
	}
	for name, argv := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := ExecStart(argv); err == nil {
				t.Errorf("ExecStart(%q) = %s, want an error", argv, got)
			}
		})
	}
}

func TestReleaseExecStart(t *testing.T) {
	tests := map[string]struct{ cmd, want string }{
		"dot slash":      {"./hello", "/r/releases/%i/hello"},
		"subdir":         {"bin/app start", "/r/releases/%i/bin/app start"},
		"absolute":       {"/usr/bin/env FOO=1 app", "/usr/bin/env FOO=1 app"},
		"bare name":      {"node server.js", "node server.js"},
		"percent arg":    {"./app 50%", "/r/releases/%i/app 50%%"},
		"odd file":       {"./my%app 'x'", `/r/releases/%i/my%%app "'x'"`},
		"quoted program": {"./a'b", ""},
		"empty":          {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := releaseExecStart("/r", tt.cmd)
			if tt.want == "" {
				if err == nil {
					t.Errorf("releaseExecStart(%q) = %s, want an error", tt.cmd, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("releaseExecStart(%q) = %s, %v; want %s", tt.cmd, got, err, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	got := []string{TemplateName("a"), InstanceName("a", "R"), BootName("a"), InstancePattern("a")}
	want := []string{"hoist-a@.service", "hoist-a@R.service", "hoist-a.service", "hoist-a@*.service"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}
