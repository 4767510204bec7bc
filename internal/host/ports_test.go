package host

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

// An OTP release gets an epmd port of its own, so that its node stays
// reachable when the release beside it stops (and its epmd with it).
func TestNewPortsGivesOTPReleasesAnEPMD(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2)
	otp := filepath.Join(l.Release(id2), "releases", "start_erl.data")
	os.MkdirAll(filepath.Dir(otp), 0o755)
	if err := os.WriteFile(otp, []byte("13.1.5 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := l.newPorts(id1, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if plain != (Ports{HTTP: 3000}) {
		t.Errorf("a release that is no OTP release got %+v", plain)
	}
	beam, err := l.newPorts(id2, 3001)
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
	if !slices.Equal(env, beam.env()) || len(env) != 2 {
		t.Errorf("port file holds %q, want %q", env, beam.env())
	}
	if got := l.readPorts(id2); got != beam {
		t.Errorf("read back %+v, want %+v", got, beam)
	}
}

// exec runs a command with the environment of the release's unit: its
// node name, its own port and epmd port, the secrets, later ones winning
// as systemd's EnvironmentFile lines win over Environment=.
func TestExecEnvIsTheUnits(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1)
	if err := l.writePorts(id1, Ports{HTTP: 3001, EPMD: 4370}); err != nil {
		t.Fatal(err)
	}
	if _, err := SetEnv(l, []byte("SECRET=s\nLOG=secret\n")); err != nil {
		t.Fatal(err)
	}
	s := &Spec{App: "hello", Port: 3000, Env: map[string]string{"LOG": "plain"}}
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
		"PORT": "3001", "ERL_EPMD_PORT": "4370", "HOIST_APP": "hello", "HOIST_RELEASE": id1,
		"RELEASE_NODE": "hello-" + id1, "SECRET": "s", "LOG": "secret", "STATE_DIRECTORY": l.StateDir(),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
}
