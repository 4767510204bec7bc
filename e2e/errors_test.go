//go:build lab

package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/transport"
)

// Each test here uses its own app and port, so that it stands alone.

func TestUnreachableHostIsNamedOthersDeploy(t *testing.T) {
	hosts := needLab(t)
	// An address on the lab's bridge where no machine runs.
	dead := hosts[0][:strings.LastIndex(hosts[0], ".")] + ".250"
	a := newApp(t, "reach", 3101, []string{hosts[0]}, "")
	mustHoist(t, a.dir, "setup")
	a.writeConfig(t, []string{hosts[0], dead}, "ssh:\n  parallel: 2\n")
	a.commit(t, "add a dead host")
	stderr := failHoist(t, a.dir, "deploy")
	if !strings.Contains(stderr, "failed "+dead) || !strings.Contains(stderr, "failed on 1 of 2 host(s)") {
		t.Errorf("stderr does not name the dead host:\n%s", stderr)
	}
	if got := a.served(hosts[0]); !strings.HasPrefix(got, "hello from release ") {
		t.Errorf("reachable host serves %q after a deploy with a dead peer", got)
	}
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "hostkey", 3102, hosts[:1], "")
	// A copy of hoist's home whose known_hosts holds another key for the host.
	home := filepath.Join(work, "home-changed")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	other := "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	kh := filepath.Join(home, "known_hosts")
	if err := os.WriteFile(kh, []byte(hosts[0]+" ssh-ed25519 "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	labDir := filepath.Join(work, "home", "lab")
	if err := os.Symlink(labDir, filepath.Join(home, "lab")); err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, hoistEnv...), "HOIST_HOME="+home)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, stderr, err := hoistWithEnv(ctx, a.dir, env, "status")
	if err == nil {
		t.Fatal("hoist connected to a host whose key changed")
	}
	if !strings.Contains(stderr, "changed") || !strings.Contains(stderr, hosts[0]) {
		t.Errorf("stderr does not explain the changed key:\n%s", stderr)
	}
	if b, _ := os.ReadFile(kh); !strings.Contains(string(b), other) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("known_hosts was modified:\n%s", b)
	}
}

func TestMissingBuildOutputRefusedBeforeUpload(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "noout", 3103, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	a.edit(t, "hoist.yml", "output: dist", "output: nothere")
	stderr := failHoist(t, a.dir, "deploy")
	if !strings.Contains(stderr, "the build left no nothere directory") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "uploading") {
		t.Errorf("hoist uploaded after a build without output:\n%s", stderr)
	}
	var out []hostReleases
	if got := mustHoist(t, a.dir, "releases", "--json"); !strings.Contains(got, `"releases": []`) {
		t.Errorf("host has releases after a refused deploy: %s %v", got, out)
	}
}

func TestBadConfigNamesLineAndColumn(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte("version: 1\napp: x\nbuild:\n  comand: make\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := failHoist(t, dir, "deploy")
	if !strings.Contains(stderr, `hoist.yml:4:3: unknown field "comand"`) {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestKilledUploadResumesAndNeverGoesLive cuts a transfer half-way: the
// host keeps serving its release, the half never becomes a release, and
// the next deploy of the same release resumes with what arrived.
func TestKilledUploadResumesAndNeverGoesLive(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "resume", 3104, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	a.change(t)
	cfg, err := config.Load(filepath.Join(a.dir, "hoist.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	art, err := build.Release(ctx, build.Options{Config: cfg, Repo: a.dir, WorkDir: filepath.Join(work, "cache"), Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	// The whole release, its transfer cut after 2 MiB.
	var log strings.Builder
	out := deploy.Ship(ctx, deploy.ShipOptions{Config: cfg, Hosts: hosts[:1], Log: &log, WorkDir: filepath.Join(work, "cache"), Full: true,
		Dial: func(ctx context.Context, h string) (transport.Conn, error) {
			return cutConn{dialLab(t, h), 2 << 20}, nil
		}}, art)
	if out.Hosts[0].Status != deploy.StatusTransferFailed || !strings.Contains(out.Hosts[0].Error, "connection ended") {
		t.Fatalf("a cut transfer: %+v\n%s", out.Hosts[0], log.String())
	}
	a.wantServed(t, hosts[:1], r1)
	c := &hostclient.Client{Conn: dialLab(t, hosts[0]), App: a.name}
	st, err := c.ShipIndex(ctx, art.Manifest, "", nil)
	if err != nil || st.Unpacked || !st.Resumed || st.Need == nil || st.Need.Have == 0 {
		t.Fatalf("after the cut the host holds %+v, %v; want part of the release", st, err)
	}

	log.Reset()
	out = deploy.Ship(ctx, deploy.ShipOptions{Config: cfg, Hosts: hosts[:1], Log: &log, WorkDir: filepath.Join(work, "cache"),
		Dial: func(ctx context.Context, h string) (transport.Conn, error) { return dialLab(t, h), nil }}, art)
	if out.Hosts[0].Status != deploy.StatusDeployed {
		t.Fatalf("resumed deploy: %+v\n%s", out.Hosts[0], log.String())
	}
	if !strings.Contains(log.String(), "resuming: the host holds") {
		t.Errorf("deploy did not resume:\n%s", log.String())
	}
	a.wantServed(t, hosts[:1], art.Manifest.ID)
}

// cutConn ends what a transfer sends after n bytes, as a dropped
// connection would.
type cutConn struct {
	transport.Conn
	n int64
}

func (c cutConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if strings.HasSuffix(cmd, " host receive") {
		stdin = io.LimitReader(stdin, c.n)
	}
	return c.Conn.Run(ctx, cmd, stdin, stdout, stderr)
}

// TestFullDiskKeepsServing fills the host's upload space: the deploy
// fails with a clear error and the previous release keeps serving.
// A full disk fails the deploy wherever it strikes — while the release
// is received (a whole upload), or while it is assembled from what the
// host holds (a delta) — and the host serves its previous release, with
// nothing half-written left beside it.
func TestFullDiskKeepsServing(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "fulldisk", 3105, hosts[:1], "")
	conn := dialLab(t, hosts[0])
	// The app's directory on a disk of its own, filled once the first
	// release is in, up to 2 MiB: too little for the next release.
	root := "/var/lib/hoist/fulldisk"
	labRun(t, conn, "mkdir -p "+root+" && mount -t tmpfs -o size=40m,mode=0755 tmpfs "+root)
	t.Cleanup(func() {
		conn.Run(context.Background(), "systemctl stop 'hoist-fulldisk@*'; umount -l "+root, nil, io.Discard, io.Discard)
	})
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	labRun(t, conn, "fallocate -l $(( $(df --output=avail -B1 "+root+" | tail -n 1) - 2*1024*1024 )) "+root+"/ballast")
	a.change(t)

	for name, args := range map[string][]string{
		"receiving a whole release": {"deploy", "--full"},
		"assembling from a delta":   {"deploy"},
	} {
		t.Run(name, func(t *testing.T) {
			stderr := failHoist(t, a.dir, args...)
			if !strings.Contains(stderr, "no space left on device") {
				t.Errorf("stderr does not say the disk is full:\n%s", stderr)
			}
			a.wantServed(t, hosts[:1], r1)
			if left := strings.TrimSpace(string(labRun(t, conn, "ls -A "+root+"/releases"))); left != r1 {
				t.Errorf("releases/ holds %q after the failed deploy, want only %s", left, r1)
			}
		})
	}
}

func dialLab(t *testing.T, addr string) transport.Conn {
	t.Helper()
	home := filepath.Join(work, "home")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, addr, transport.Options{
		User: "root", IdentityFiles: []string{filepath.Join(home, "lab", "id_ed25519")},
		TrustFile: filepath.Join(home, "known_hosts"), SSHConfigFile: "none",
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestOtherArchitectureRefusedBeforeUpload(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "arch", 3107, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	a.edit(t, "hoist.yml", "  output: dist\n", "  output: dist\n  target: linux/arm64\n")
	stderr := failHoist(t, a.dir, "deploy")
	if !strings.Contains(stderr, "built for linux/arm64 but this host is linux/amd64") {
		t.Errorf("stderr does not explain the mismatch:\n%s", stderr)
	}
	if strings.Contains(stderr, "uploading") {
		t.Errorf("hoist uploaded a release the host cannot run:\n%s", stderr)
	}
}

// A port another app already listens on is refused before the release
// starts: otherwise the health check is answered by the other app and
// the proxy is switched to it. The other app serves on untouched.
func TestPortHeldByAnotherAppIsRefused(t *testing.T) {
	hosts := needLab(t)
	squat := newApp(t, "squat", 3130, hosts[:1], "")
	mustHoist(t, squat.dir, "setup")
	want := strings.TrimSpace(mustHoist(t, squat.dir, "deploy"))
	clash := newApp(t, "clash", 3130, hosts[:1], "proxy:\n  hosts: [clash.test]\n")
	mustHoist(t, clash.dir, "setup")
	stderr := failHoist(t, clash.dir, "deploy")
	if !strings.Contains(stderr, "port 3130 is held by hello") || !strings.Contains(stderr, "run.port") {
		t.Errorf("deploy onto a port another app holds: stderr does not name the port, its holder and what to do:\n%s", stderr)
	}
	if got := squat.served(hosts[0]); got != "hello from release "+want {
		t.Errorf("the app that holds the port serves %q, want its release %s", got, want)
	}
	if got, err := get(http.DefaultClient, "http://"+hosts[0]+"/", "clash.test"); err == nil {
		t.Errorf("the proxy routes clash.test to %q", got)
	}
}

// One machine listed under two names (its address, and user@address) is
// refused, by deploy before the build, and by setup and rollback: both
// present the same host key.
func TestOneMachineListedTwiceIsRefused(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "twice", 3131, []string{hosts[0], "root@" + hosts[0]}, "")
	stderr := failHoist(t, a.dir, "deploy")
	want := "hosts " + hosts[0] + " and root@" + hosts[0] + " are one machine"
	if !strings.Contains(stderr, want) || strings.Contains(stderr, "building") {
		t.Errorf("deploy to one machine listed twice: stderr does not refuse it before the build (%q):\n%s", want, stderr)
	}
	for _, verb := range []string{"setup", "rollback"} {
		if stderr := failHoist(t, a.dir, verb); !strings.Contains(stderr, want) {
			t.Errorf("%s on one machine listed twice: stderr does not refuse it (%q):\n%s", verb, want, stderr)
		}
	}
}
