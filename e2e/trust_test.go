//go:build lab

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/names"
)

// TestReservedAppNamesAreRefused: an app named like hoist's own
// (proxy: its user hoist-proxy holds every app's TLS keys) is refused
// with its place in hoist.yml before anything reaches a host, and the
// host refuses it too when asked directly. Every reserved name is
// tried: the list is derived from hoist's own names, not written down.
func TestReservedAppNamesAreRefused(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	// A valid app, set up: the host has this hoist to ask.
	ok := newApp(t, "named-ok", 3810, hosts[:1], "")
	mustHoist(t, ok.dir, "setup")
	reserved := names.Reserved()
	if len(reserved) == 0 {
		t.Fatal("no reserved app name")
	}
	for _, name := range reserved {
		t.Run(name, func(t *testing.T) {
			a := newApp(t, "reserved-"+name, 3811, hosts[:1], "")
			a.edit(t, "hoist.yml", "app: reserved-"+name+"\n", "app: "+name+"\n")
			// What changes on the host from here is what the refused
			// commands did.
			onHost(t, h, "touch /run/hoist-reserved-mark")
			for _, verb := range [][]string{{"setup"}, {"deploy"}} {
				stderr := failHoist(t, a.dir, verb...)
				if want := fmt.Sprintf("hoist.yml:2:6: app: %q is reserved", name); !strings.Contains(stderr, want) {
					t.Errorf("hoist %s: stderr does not say %q:\n%s", verb[0], want, stderr)
				}
			}
			// The host, asked directly as another client would.
			req := fmt.Sprintf(`{"app":%q,"args":{"app":%q,"command":"./hello","port":3811,"health_path":"/up","health_timeout":1000000000,"health_interval":1000000000,"keep_releases":2}}`, name, name)
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := dialLab(t, h).Run(ctx, "hoist host setup", strings.NewReader(req+"\n"), &out, &errb)
			if err == nil || !strings.Contains(out.String(), `"ok":false`) || !strings.Contains(out.String(), "is reserved") {
				t.Errorf("hoist host setup of app %s: %v\n%s%s; want it refused as reserved", name, err, out.String(), errb.String())
			}
			// (The proxy's certificates and routes change on their own.)
			find := "find /var/lib/hoist /etc/systemd/system /var/lib/hoist-" + name + " -path /var/lib/hoist/proxy/certificates -prune -o -newer /run/hoist-reserved-mark ! -path /var/lib/hoist/proxy/state.json -print 2>/dev/null; true"
			if changed := onHost(t, h, find); changed != "" {
				t.Errorf("the refused app %s changed the host:\n%s", name, changed)
			}
		})
	}
}

// TestTwoAppsOnOneHostKeepApart is issue 17's proof of releases kept
// apart: a host runs two apps behind its proxy, the Go example and the
// Elixir one (an OTP release). As each app's user, as the proxy's and
// as nobody, reading the other app's release, secrets, accessories'
// URLs or cookie is refused; each app's user reads its own release and
// none of the secret files. The Elixir node refuses the build's cookie
// (the one in releases/COOKIE of every release, the same for any build
// of the source), while hoist exec -- bin/APP rpc reaches it; each app
// has a cookie of its own.
func TestTwoAppsOnOneHostKeepApart(t *testing.T) {
	hosts := needLab(t)[:1]
	h := hosts[0]
	goApp := newApp(t, "keep-go", 3800, hosts, "proxy:\n  hosts: [keep-go.test]\n")
	mustHoist(t, goApp.dir, "secrets", "gen", "TOKEN")
	goApp.commit(t, "a secret")
	mustHoist(t, goApp.dir, "setup")
	mustHoist(t, goApp.dir, "deploy")
	ex := newElixirApp(t, "keep-ex", 4050, hosts, elixirRootfs, "proxy:\n  hosts: [keep-ex.test]\n")
	mustHoist(t, ex.dir, "deploy")

	type app struct {
		name    string
		release []string // files of the current release
	}
	apps := []app{{"keep-go", []string{"hello"}}, {"keep-ex", []string{"bin/hello_elixir", "releases/COOKIE"}}}
	secretFiles := []string{"shared/env", "shared/accessories.env", "shared/cookie.env"}
	paths := func(a app) (release, secret []string) {
		root := "/var/lib/hoist/" + a.name
		for _, f := range a.release {
			release = append(release, path.Join(root, "current", f))
		}
		for _, f := range secretFiles {
			secret = append(secret, path.Join(root, f))
		}
		return release, secret
	}
	// As root every file is there: a refusal below is no missing file.
	for _, a := range apps {
		rel, sec := paths(a)
		for _, f := range append(rel, sec...) {
			if out := onHost(t, h, "test -f "+f+" || echo missing"); out != "" {
				t.Errorf("%s is not there", f)
			}
		}
		if got := onHost(t, h, fmt.Sprintf("stat -c '%%a %%U %%G' /var/lib/hoist/%s /var/lib/hoist/%s/releases", a.name, a.name)); got != strings.Repeat("750 root hoist-"+a.name+"\n", 2) {
			t.Errorf("the directories of %s are:\n%s\nwant 750 root hoist-%s", a.name, got, a.name)
		}
	}
	// tryRead reads each file as user and says, per file, "read" or
	// the error.
	tryRead := func(user string, files []string) map[string]string {
		t.Helper()
		var script strings.Builder
		for _, f := range files {
			fmt.Fprintf(&script, "if e=$(runuser -u %s -- cat %s 2>&1 >/dev/null); then echo \"%s read\"; else echo \"%s $e\"; fi\n", user, f, f, f)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(onHost(t, h, script.String())), "\n") {
			f, what, _ := strings.Cut(line, " ")
			got[f] = what
		}
		return got
	}
	denied := func(user string, files []string) {
		t.Helper()
		for f, what := range tryRead(user, files) {
			if !strings.Contains(what, "Permission denied") {
				t.Errorf("as %s, cat %s: %s; want Permission denied", user, f, what)
			}
		}
	}
	for _, a := range apps {
		rel, sec := paths(a)
		for _, user := range []string{"hoist-keep-go", "hoist-keep-ex", "hoist-proxy", "nobody"} {
			if user == "hoist-"+a.name {
				for f, what := range tryRead(user, rel) {
					if what != "read" {
						t.Errorf("the app's own user %s cannot read its release's %s: %s", user, f, what)
					}
				}
				denied(user, sec)
				continue
			}
			denied(user, append(rel, sec...))
		}
	}

	// The node's cookie is the app's own, not the build's.
	build := strings.TrimSpace(onHost(t, h, "cat /var/lib/hoist/keep-ex/current/releases/COOKIE"))
	cookies := map[string]string{}
	for _, a := range apps {
		cookies[a.name] = strings.TrimSpace(strings.TrimPrefix(onHost(t, h, "cat /var/lib/hoist/"+a.name+"/shared/cookie.env 2>/dev/null; true"), "RELEASE_COOKIE="))
	}
	if build == "" || cookies["keep-ex"] == build || cookies["keep-ex"] == cookies["keep-go"] || len(cookies["keep-ex"]) < 32 {
		t.Errorf("cookies: the build's %q, keep-ex's %q, keep-go's %q: want each app one of its own", build, cookies["keep-ex"], cookies["keep-go"])
	}
	if got := mustHoist(t, ex.dir, "exec", "--", "bin/hello_elixir", "rpc", "IO.puts(:ok)"); got != "ok\n" {
		t.Errorf("rpc with the app's cookie printed %q, want ok", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stdout, stderr, err := hoist(ctx, ex.dir, "exec", "--", "sh", "-c", `RELEASE_COOKIE="$(cat releases/COOKIE)" exec bin/hello_elixir rpc "IO.puts(:ok)"`)
	if err == nil || strings.Contains(stdout, "ok") {
		t.Errorf("rpc with the build's cookie reached the node: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
}
