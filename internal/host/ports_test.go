package host

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A release started without the proxy has no port file, yet holds
// run.port: turning the proxy on must start the next one beside it.
func TestHeldPort(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2)
	if got := l.heldPort(id1, 3000); got != 3000 {
		t.Errorf("a release without a port file holds %d, want run.port 3000", got)
	}
	if err := l.writePorts(id2, Ports{HTTP: 3001}); err != nil {
		t.Fatal(err)
	}
	if got := l.heldPort(id2, 3000); got != 3001 {
		t.Errorf("a release given 3001 holds %d", got)
	}
}

// otpRelease makes release id of l look like an OTP release.
func otpRelease(t *testing.T, l Layout, id string) {
	t.Helper()
	otp := filepath.Join(l.Release(id), "releases", "start_erl.data")
	os.MkdirAll(filepath.Dir(otp), 0o755)
	if err := os.WriteFile(otp, []byte("13.1.5 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An OTP release gets an epmd port of its own, so that its node stays
// reachable when the release beside it stops (and its epmd with it);
// its epmd and distribution listen on loopback only, and its node is
// named by the address it listens on.
func TestNewPortsGivesOTPReleasesAnEPMDOnLoopback(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2)
	otpRelease(t, l, id2)
	plain, err := l.newPorts(id1, 3000, "")
	if err != nil {
		t.Fatal(err)
	}
	if plain != (Ports{HTTP: 3000}) {
		t.Errorf("a release that is no OTP release got %+v", plain)
	}
	beam, err := l.newPorts(id2, 3001, "")
	if err != nil {
		t.Fatal(err)
	}
	if beam.HTTP != 3001 || beam.EPMD == 0 || beam.EPMD == 3000 || beam.EPMD == 3001 {
		t.Errorf("an OTP release got %+v", beam)
	}
	// What the unit reads is what exec reads.
	env, err := readEnvFile(l.portFile(id2))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PORT=3001",
		"ERL_EPMD_PORT=" + strconv.Itoa(beam.EPMD),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RELEASE_DISTRIBUTION=name",
		"RELEASE_NODE=hello-" + id2 + "@127.0.0.1",
		"ERL_ZFLAGS=-kernel inet_dist_use_interface {127,0,0,1}",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("port file (-want +got):\n%s", diff)
	}
	if got := l.readPorts(id2); got != beam {
		t.Errorf("read back %+v, want %+v", got, beam)
	}
}

// On a private network, the nodes of one release on several hosts find
// each other: each host's epmd of the release listens on the same port.
func TestClusterEPMDPortIsTheReleases(t *testing.T) {
	l := For(t.TempDir(), "hello")
	addr := netip.MustParseAddr("10.0.0.5")
	p1, err := l.epmdPort(id1, addr, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != clusterEPMDPort("hello", id1) || p1 < 20000 || p1 >= 30000 {
		t.Errorf("epmd port of %s on a private network is %d, want %d in 20000-29999", id1, p1, clusterEPMDPort("hello", id1))
	}
	if p2, _ := l.epmdPort(id2, addr, 3000); p2 == p1 {
		t.Errorf("two releases share epmd port %d", p1)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(p1))
	if err != nil {
		t.Fatalf("hold port %d, free a moment ago: %v", p1, err)
	}
	defer ln.Close()
	if _, err := l.epmdPort(id1, addr, 3000); err == nil || !strings.Contains(err.Error(), "is taken") {
		t.Errorf("a taken epmd port gives %v, want an error saying so", err)
	}
	// Unless the release holds it: it is activated again while it runs.
	install(t, l, id1)
	if err := l.writePorts(id1, Ports{HTTP: 3000, EPMD: p1, Addr: addr}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.epmdPort(id1, addr, 3000); err != nil || p != p1 {
		t.Errorf("the running release's own epmd port: %d, %v; want %d", p, err, p1)
	}
}

func TestAddrIn(t *testing.T) {
	ifaces := []net.Addr{
		&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.IPv4(10, 213, 7, 12), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.IPv4(10, 213, 7, 11), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(64, 128)},
	}
	tests := map[string]struct {
		network string
		want    string // "" for an error
	}{
		"the lowest address in it": {"10.213.7.0/24", "10.213.7.11"},
		"a wider network":          {"10.0.0.0/8", "10.213.7.11"},
		"no address in it":         {"192.168.0.0/16", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := addrIn(netip.MustParsePrefix(tt.network), ifaces)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no address in "+tt.network) {
					t.Errorf("addrIn = %v, %v; want an error naming the network", got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("addrIn = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// At boot a loopback epmd port is picked again (it may have been taken
// meanwhile); a private network's stays the release's.
func TestRenewEPMD(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2)
	otpRelease(t, l, id1)
	otpRelease(t, l, id2)
	// A port file of an earlier hoist: no address.
	os.MkdirAll(l.Ports(), 0o755)
	if err := os.WriteFile(l.portFile(id1), []byte("PORT=3000\nERL_EPMD_PORT=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cluster := Ports{HTTP: 3001, EPMD: 24242, Addr: netip.MustParseAddr("10.0.0.5")}
	if err := l.writePorts(id2, cluster); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{id1, id2} {
		if err := l.renewEPMD(id); err != nil {
			t.Fatal(err)
		}
	}
	if p := l.readPorts(id1); p.EPMD == 1 || p.EPMD == 0 || p.Addr.String() != "127.0.0.1" || p.HTTP != 3000 {
		t.Errorf("loopback release after boot: %+v", p)
	}
	if p := l.readPorts(id2); p != cluster {
		t.Errorf("private network release after boot: %+v, want %+v", p, cluster)
	}
}

// exec runs a command with the environment of the release's unit: its
// node name, its own port and epmd port, the secrets, later ones winning
// as systemd's EnvironmentFile lines win over Environment=. A node it
// starts never starts an epmd of its own.
func TestExecEnvIsTheUnits(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1)
	if err := l.writePorts(id1, Ports{HTTP: 3001, EPMD: 4370, Addr: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := setEnv(l, []byte("SECRET=s\nLOG=secret\n")); err != nil {
		t.Fatal(err)
	}
	s := &hostproto.Spec{App: "hello", Port: 3000, Env: map[string]string{"LOG": "plain"}}
	env, err := l.execEnv(s, id1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v // the last one wins, as in exec.Cmd.Env
	}
	want := map[string]string{
		"PORT": "3001", "ERL_EPMD_PORT": "4370", "ERL_EPMD_ADDRESS": "127.0.0.1", "HOIST_APP": "hello", "HOIST_RELEASE": id1,
		"RELEASE_NODE": "hello-" + id1 + "@127.0.0.1", "RELEASE_DISTRIBUTION": "name", "SECRET": "s", "LOG": "secret",
		"STATE_DIRECTORY": l.StateDir(), "ERL_ZFLAGS": "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
}

// A release that started after the units and secrets last changed runs
// with them: deployed again, it need not restart.
func TestStartedAsNow(t *testing.T) {
	saved := UnitDir
	UnitDir = t.TempDir()
	t.Cleanup(func() { UnitDir = saved })
	start := time.Now().Add(-time.Hour)
	before, after := start.Add(-time.Minute), start.Add(time.Minute)
	tests := map[string]struct {
		env, unit, acc, cookie time.Time // zero: no such file
		ports                  bool
		want                   bool
	}{
		"all older":           {before, before, before, before, true, true},
		"no secrets":          {time.Time{}, before, time.Time{}, before, true, true},
		"secrets changed":     {after, before, before, before, true, false},
		"units changed":       {before, after, before, before, true, false},
		"accessories changed": {before, before, after, before, true, false}, // REDIS_URL added by setup
		"cookie made since":   {before, before, before, after, true, false},
		"never started by us": {before, before, before, before, false, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			l := For(t.TempDir(), "hello")
			os.MkdirAll(l.Shared(), 0o700)
			os.MkdirAll(l.Ports(), 0o755)
			files := map[string]time.Time{l.EnvFile(): tt.env, filepath.Join(UnitDir, systemd.TemplateName("hello")): tt.unit, l.AccessoriesEnvFile(): tt.acc, l.CookieFile(): tt.cookie}
			if tt.ports {
				files[l.portFile(id1)] = start
			}
			for p, at := range files {
				os.Remove(p)
				if at.IsZero() {
					continue
				}
				if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, at, at); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.startedAsNow(id1); got != tt.want {
				t.Errorf("startedAsNow = %v, want %v", got, tt.want)
			}
		})
	}
}

// A port another program listens on is refused before a release starts,
// naming the port and what to do; a free one is taken.
func TestClaimPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := ln.Addr().(*net.TCPAddr).Port
	err = claimPort(context.Background(), held)
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(held)+" is held by") || !strings.Contains(usererr.HintOf(err), "run.port") {
		t.Fatalf("claimPort(held %d) = %v (hint %q); want the port named and run.port in the hint", held, err, usererr.HintOf(err))
	}
	free, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := claimPort(context.Background(), free); err != nil {
		t.Errorf("claimPort(free %d) = %v", free, err)
	}
}

// Each app gets a cookie of its own on a host, made once, 0600, which
// the unit and exec read before the secrets: a secret RELEASE_COOKIE
// wins, the build's releases/COOKIE never does.
func TestEachAppItsOwnCookie(t *testing.T) {
	base := t.TempDir()
	web, shop := For(base, "web"), For(base, "shop")
	for _, l := range []Layout{web, shop} {
		if err := ensureCookie(l); err != nil {
			t.Fatal(err)
		}
	}
	cookie := func(l Layout) string {
		t.Helper()
		fi, err := os.Stat(l.CookieFile())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 0600", l.CookieFile(), fi.Mode().Perm())
		}
		env, err := readEnvFile(l.CookieFile())
		if err != nil || len(env) != 1 || !strings.HasPrefix(env[0], "RELEASE_COOKIE=") || len(env[0]) != len("RELEASE_COOKIE=")+cookieLength {
			t.Fatalf("%s holds %q, %v; want RELEASE_COOKIE= and %d characters", l.CookieFile(), env, err, cookieLength)
		}
		return env[0]
	}
	first := cookie(web)
	if cookie(shop) == first {
		t.Errorf("two apps share the cookie %s", first)
	}
	if err := ensureCookie(web); err != nil {
		t.Fatal(err)
	}
	if again := cookie(web); again != first {
		t.Errorf("setup again changed the cookie from %s to %s", first, again)
	}
	// A cookie an older hoist made may begin with "-", which a node
	// takes for a flag: no node ever started with it, so setup replaces it.
	unusable := cookieVar + "=-" + strings.Repeat("a", cookieLength-1)
	if err := os.WriteFile(web.CookieFile(), []byte(unusable+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ensureCookie(web); err != nil {
		t.Fatal(err)
	}
	if first = cookie(web); first == unusable || strings.HasPrefix(first, cookieVar+"=-") {
		t.Errorf("setup kept the cookie %s, which no node starts with", first)
	}

	install(t, web, id1)
	otpRelease(t, web, id1)
	os.WriteFile(filepath.Join(web.Release(id1), "releases", "COOKIE"), []byte("from-the-build"), 0o644)
	s := &hostproto.Spec{App: "web", Port: 3000}
	last := func() string {
		t.Helper()
		env, err := web.execEnv(s, id1)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range env {
			if strings.HasPrefix(kv, "RELEASE_COOKIE=") {
				got = kv
			}
		}
		return got
	}
	if got := last(); got != first {
		t.Errorf("exec gets %q, want the app's own %s", got, first)
	}
	if _, err := setEnv(web, []byte("RELEASE_COOKIE=ours\n")); err != nil {
		t.Fatal(err)
	}
	if got := last(); got != "RELEASE_COOKIE=ours" {
		t.Errorf("exec gets %q, want the secret's", got)
	}
}

// On a network, where nodes of several hosts connect, a release needs
// the cookie as a secret: each host made its own.
func TestNodesOnANetworkNeedASecretCookie(t *testing.T) {
	l := For(t.TempDir(), "web")
	install(t, l, id1)
	otpRelease(t, l, id1)
	if err := ensureCookie(l); err != nil {
		t.Fatal(err)
	}
	_, err := l.newPorts(id1, 3000, "10.0.0.0/24")
	var ue *usererr.Error
	if !errors.As(err, &ue) || !strings.Contains(ue.Hint, "hoist secrets gen RELEASE_COOKIE") {
		t.Fatalf("newPorts on a network without the secret = %v, want a user error with its hint", err)
	}
	if _, err := setEnv(l, []byte("RELEASE_COOKIE=shared\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.newPorts(id1, 3000, "10.0.0.0/24"); err != nil && strings.Contains(err.Error(), "cookie") {
		t.Errorf("with the secret: %v", err)
	}
	if _, err := l.newPorts(id1, 3000, ""); err != nil {
		t.Errorf("on loopback the host's cookie does: %v", err)
	}
}
