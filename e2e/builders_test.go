//go:build lab

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/build"
)

// elixirPackages is the build tree of examples/hello-elixir.
var elixirPackages = []string{"elixir", "erlang-dev", "erlang-inets", "erlang-os-mon", "erlang-runtime-tools"}

// elixirRootfs is the build section that builds it with the rootfs builder.
var elixirRootfs = "  builder: rootfs\n  distro: debian/bookworm\n  packages: [" + strings.Join(elixirPackages, ", ") + "]\n"

// newElixirApp copies examples/hello-elixir into a fresh repository with
// its secret key base set and extra at the end of its hoist.yml, and sets
// it up on hosts.
func newElixirApp(t *testing.T, name string, port int, hosts []string, buildSection, extra string) *appRepo {
	t.Helper()
	a := &appRepo{dir: filepath.Join(work, "apps", name), name: name, port: port}
	src := filepath.Join("..", "examples", "hello-elixir")
	os.MkdirAll(filepath.Dir(a.dir), 0o755)
	if out, err := exec.Command("cp", "-r", src, a.dir).CombinedOutput(); err != nil {
		t.Fatalf("copy example: %v\n%s", err, out)
	}
	a.write(t, "hoist.yml", fmt.Sprintf(`version: 1
app: %s
hosts: [%s]
build:
%s  command: mix release --overwrite --path dist
  output: dist
  env:
    MIX_ENV: prod
  caches: [_build, deps]
run:
  command: bin/hello_elixir start
  port: %d
  env:
    RELEASE_TMP: /tmp
health:
  path: /up
  timeout: 60s
  interval: 500ms
hooks:
  before_switch: bin/hello_elixir eval "HelloElixir.Release.migrate()"
%s`, name, strings.Join(hosts, ", "), buildSection, port, extra))
	a.git(t, "init", "-q", "-b", "main")
	mustHoist(t, a.dir, "secrets", "gen", "SECRET_KEY_BASE")
	a.commit(t, "initial")
	mustHoist(t, a.dir, "setup")
	return a
}

// TestElixirThroughRootfs builds the Elixir example in a Debian root tree
// and deploys it to a host that has no Erlang: the release carries its
// runtime, reads its secret from the environment, runs its migration
// hook, and answers rpc through hoist exec.
func TestElixirThroughRootfs(t *testing.T) {
	hosts := needLab(t)
	a := newElixirApp(t, "hello-elixir", 4000, hosts[:1], elixirRootfs, "")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts[:1], r1)
	if got := mustHoist(t, a.dir, "exec", "--", "bin/hello_elixir", "rpc", "IO.puts(:ok)"); got != "ok\n" {
		t.Errorf("rpc printed %q", got)
	}
	if got := mustHoist(t, a.dir, "exec", "--", "sh", "-c", `command -v erl || echo none; cat "$STATE_DIRECTORY/migrated"`); got != "none\n"+r1+"\n" {
		t.Errorf("host has Erlang or the migration did not run: %q", got)
	}

	// Without its secret the release refuses to start, and the previous
	// release keeps serving.
	mustHoist(t, a.dir, "secrets", "rm", "SECRET_KEY_BASE")
	a.commit(t, "no secret")
	stderr := failHoist(t, a.dir, "deploy")
	if !strings.Contains(stderr, "SECRET_KEY_BASE is missing") {
		t.Errorf("the failure does not show why:\n%s", stderr)
	}
	a.wantServed(t, hosts[:1], r1)
}

// TestGoThroughRootfs builds the Go example with Debian trixie's Go, with
// Go's build cache kept between builds.
func TestGoThroughRootfs(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "gorootfs", 3110, hosts[:1], "")
	a.edit(t, "hoist.yml", "build:\n", "build:\n  builder: rootfs\n  distro: debian/trixie\n  packages: [golang-go]\n  caches: [/root/.cache/go-build]\n")
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts[:1], id)
}

// TestContainerBuilder builds the Elixir example with podman, in an image
// imported from the rootfs builder's tree (no registry is reachable here).
func TestContainerBuilder(t *testing.T) {
	hosts := needLab(t)
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("podman is not installed; scripts/deps.sh installs it")
		}
		t.Skip("podman is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tree, err := (&build.Rootfs{Distro: "debian/bookworm", Packages: elixirPackages, CacheDir: filepath.Join(work, "cache", "rootfs")}).Tree(ctx, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// podman here needs runc and cgroupfs, and no ulimit changes
	// (../shared/notes/platform.md); hoist takes that from containers.conf.
	conf := filepath.Join(work, "containers.conf")
	os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n"), 0o644)
	t.Setenv("CONTAINERS_CONF", conf)
	hoistEnv = append(hoistEnv, "CONTAINERS_CONF="+conf)
	defer func() { hoistEnv = hoistEnv[:len(hoistEnv)-1] }()
	image := "localhost/hoist-e2e/elixir:1"
	imp := exec.CommandContext(ctx, "sh", "-c", "tar -C "+tree+" -c . | podman import - "+image)
	imp.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	a := newElixirApp(t, "elixir-podman", 4001, hosts[1:2], "  builder: container\n  image: "+image+"\n", "")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts[1:2], id)
}

// TestRemoteBuilder builds the Go example on one lab host and deploys it
// to the other.
func TestRemoteBuilder(t *testing.T) {
	hosts := needLab(t)
	goroot := strings.TrimSpace(string(must(exec.Command("go", "env", "GOROOT").Output())))
	// The build host gets this machine's Go toolchain: lab hosts have no
	// route to a package mirror.
	conn := dialLab(t, hosts[1])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	tarCmd := exec.CommandContext(ctx, "tar", "-C", filepath.Dir(goroot), "-c", filepath.Base(goroot))
	tarCmd.Stdout = pw
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pw.CloseWithError(tarCmd.Wait()) }()
	var stderr bytes.Buffer
	if err := conn.Run(ctx, "rm -rf /opt/go && mkdir -p /opt && tar -x -C /opt && mv /opt/"+filepath.Base(goroot)+" /opt/go 2>/dev/null; test -x /opt/go/bin/go", pr, io.Discard, &stderr); err != nil {
		t.Fatalf("copy Go to the build host: %v\n%s", err, stderr.String())
	}
	a := newApp(t, "remotebuild", 3111, hosts[:1], "")
	a.edit(t, "hoist.yml", "build:\n  command: CGO_ENABLED=0 go build", "build:\n  builder: remote\n  host: "+hosts[1]+"\n  caches: [/root/.cache/go-build]\n  command: PATH=/opt/go/bin:$PATH CGO_ENABLED=0 go build")
	mustHoist(t, a.dir, "setup")
	stdout, errOut, err := hoist(ctx, a.dir, "deploy")
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "building on "+hosts[1]) {
		t.Errorf("the build did not run on the build host:\n%s", errOut)
	}
	a.wantServed(t, hosts[:1], strings.TrimSpace(stdout))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
