package systemd

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/goldentest"
)

var hello = App{
	Name: "hello", User: "hoist-hello", ReleaseDir: "/var/lib/hoist/hello/releases/%i", PortFile: "/var/lib/hoist/hello/ports/%i.env",
	StateDirectory: "hoist-hello", Command: "./hello --greeting 100%",
	Port: 3000, Env: map[string]string{"LOG_LEVEL": "info", "QUOTE": `say "hi" \ 50%`},
	EnvFile: "/var/lib/hoist/hello/shared/env", AccessoriesEnvFile: "/var/lib/hoist/hello/shared/accessories.env", CookieFile: "/var/lib/hoist/hello/shared/cookie.env", HoistBin: "/usr/local/bin/hoist", BootRequest: `{"app":"hello","args":{}}`,
}

func TestTemplateGolden(t *testing.T) {
	b, err := Template(hello)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "testdata/hello@.service", b)
}

func TestBootGolden(t *testing.T) {
	b, err := Boot(hello)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "testdata/hello.service", b)
}

// hostile is an app whose command and names hold everything systemd
// would otherwise read as syntax.
var hostile = App{
	Name: "hostile", User: "hoist-hostile", ReleaseDir: "/var/lib/hoist/hostile/releases/%i",
	PortFile: "/var/lib/hoist/hostile/ports/%i.env", StateDirectory: "hoist-hostile",
	Command: `bin/my%app --pct 100% --env $HOME ${PATH} --quote "a" 'b' --back \n\ --semi ; --spec %i%n`,
	Port:    3000, Env: map[string]string{"A": "%h $HOME"}, EnvFile: "/var/lib/hoist/hostile/shared/env",
	HoistBin: "/usr/local/bin/hoist",
}

func TestHostileTemplateGolden(t *testing.T) {
	b, err := Template(hostile)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "testdata/hostile@.service", b)
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
	goldentest.Check(t, "testdata/hoist-proxy.service", b)
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
	goldentest.Check(t, "testdata/hostile-proxy.service", b)
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
		"specifier file": {"./%i", `/r/releases/%i/%%i`},
		"quoted program": {"./a'b", ""},
		"empty":          {"", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := releaseExecStart("/r/releases/%i", tt.cmd)
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

func TestJournalFolding(t *testing.T) {
	about := strings.Join([]string{
		"2026-11-25T01:00:00+0000 h systemd[1]: hoist-a@1.service: Main process exited, code=exited, status=1/FAILURE",
		"2026-11-25T01:00:01+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:02+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:03+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument",
		"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1.",
	}, "\n")
	tests := map[string]struct {
		own, about string
		max        int
		want       string
	}{
		"app first, repeats folded": {own: "2026-11-25T01:00:00+0000 h hello[9]: cannot open database", about: about, max: 6, want: strings.Join([]string{
			"2026-11-25T01:00:00+0000 h hello[9]: cannot open database",
			"-- systemd:",
			"2026-11-25T01:00:00+0000 h systemd[1]: hoist-a@1.service: Main process exited, code=exited, status=1/FAILURE",
			"2026-11-25T01:00:03+0000 h systemd[1]: hoist-a@1.service: Failed to kill control group, ignoring: Invalid argument (3 times)",
			"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1.",
		}, "\n")},
		"systemd's last lines only": {own: "x", about: about, max: 1, want: "x\n-- systemd:\n" +
			"2026-11-25T01:00:04+0000 h systemd[1]: hoist-a@1.service: Scheduled restart job, restart counter is at 1."},
		"app silent": {about: "2026-11-25T01:00:00+0000 h systemd[1]: started", max: 6,
			want: "(the release logged nothing)\n-- systemd:\n2026-11-25T01:00:00+0000 h systemd[1]: started"},
		"nothing": {max: 6, want: "(nothing in the journal)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := joinJournal(tt.own, foldRepeats(tt.about, tt.max)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestTaskUnitsGolden(t *testing.T) {
	svc, timer, err := TaskUnits(Task{App: "hello", Name: "digest", Calendar: "Mon..Fri *-*-* 07:30:00", Timeout: 10 * time.Minute,
		HoistBin: "/usr/local/bin/hoist", Request: `{"app":"hello","args":{"name":"digest"}}`,
		StateDir: "/var/lib/hoist-hello", RecordDir: "/var/lib/hoist/hello/tasks"})
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "testdata/hello.task.digest.service", svc)
	goldentest.Check(t, "testdata/hello.task.digest.timer", timer)
	if _, _, err := TaskUnits(Task{App: "hello", Name: "x", Calendar: "daily\nExecStart=/bin/evil"}); err == nil {
		t.Errorf("a calendar with a newline was rendered")
	}
}
