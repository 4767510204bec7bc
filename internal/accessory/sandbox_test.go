package accessory

import (
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/systemd"
)

// TestUnitsCarryTheSandbox renders every service hoist writes or drops
// in (here, where the accessories' renderers and systemd's are both in
// sight) and checks each carries every directive of the base sandbox,
// with the base's value unless the unit's hardening relaxes it, and
// each of its relaxations with a reason.
func TestUnitsCarryTheSandbox(t *testing.T) {
	app := systemd.App{Name: "hello", User: "hoist-hello", ReleaseDir: "/var/lib/hoist/hello/releases/%i", PortFile: "/var/lib/hoist/hello/ports/%i.env",
		StateDirectory: "hoist-hello", Command: "./hello", Port: 3000, EnvFile: "/var/lib/hoist/hello/shared/env",
		HoistBin: "/usr/local/bin/hoist", BootRequest: `{"app":"hello","args":{}}`}
	proxy := systemd.Proxy{HoistBin: "/usr/local/bin/hoist", User: "hoist-proxy", RuntimeDir: "hoist", StateDir: "hoist/proxy", Control: "/run/hoist/proxy.sock"}
	task := systemd.Task{App: "hello", Name: "digest", Calendar: "daily", Timeout: time.Minute, HoistBin: "/usr/local/bin/hoist",
		Request: `{"app":"hello"}`, StateDir: "/var/lib/hoist-hello", RecordDir: "/var/lib/hoist/hello/tasks"}
	pg := &postgres{s: pgSpec(), ver: "15", cluster: "shop.db", owner: &user.User{Uid: "0", Gid: "0"}}
	rs := &hostproto.AccessorySpec{App: "shop", Name: "cache", Service: "redis", Package: "redis-server", Port: 6379, Env: "REDIS_URL"}
	r := &redis{s: rs, f: redisFlavor}
	place := Place{Dir: "/var/lib/hoist/shop/accessories/db", Backups: "/var/lib/hoist/shop/accessories/db/backups", HoistBin: "/usr/local/bin/hoist",
		BackupRequest: `{"app":"shop","args":{"name":"db"}}`}

	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	taskSvc, _, err := systemd.TaskUnits(task)
	if err != nil {
		t.Fatal(err)
	}
	backupSvc, _ := renderBackupUnits(pg.s, place, pg.unit())
	units := []struct {
		name string
		unit []byte
		h    systemd.Hardening
	}{
		{"release template", must(systemd.Template(app)), systemd.ReleaseHardening(app)},
		{"boot", must(systemd.Boot(app)), systemd.BootHardening(app)},
		{"proxy", must(systemd.ProxyService(proxy)), systemd.ProxyHardening(proxy)},
		{"task", taskSvc, systemd.TaskHardening(task)},
		{"backup", backupSvc, backupHardening(place)},
		{"postgresql drop-in", renderDropIn(pg.hardening(), nil), dropInHardening(pg.hardening())},
		{"redis drop-in", renderDropIn(r.hardening(), nil), dropInHardening(r.hardening())},
	}
	for _, u := range units {
		t.Run(u.name, func(t *testing.T) {
			lines := map[string][]string{} // key: its values, in order
			var service bool
			for _, l := range strings.Split(string(u.unit), "\n") {
				if strings.HasPrefix(l, "[") {
					service = l == "[Service]"
				}
				if k, v, ok := strings.Cut(l, "="); ok && service && !strings.HasPrefix(l, "#") {
					lines[k] = append(lines[k], v)
				}
			}
			for _, d := range systemd.Base() {
				want := u.h.Effective(d.Key)
				if got := lines[d.Key]; len(got) != 1 || got[0] != want {
					t.Errorf("%s=%q, want %s=%s once (the base has %s)", d.Key, got, d.Key, want, d)
				}
			}
			for _, r := range u.h.Relax {
				if !strings.Contains(string(u.unit), "# Relaxed: "+r.Why+"\n"+r.Directive.String()+"\n") {
					t.Errorf("relaxation %s is not written with its reason", r.Directive)
				}
			}
			for _, d := range u.h.Tighten {
				if got := lines[d.Key]; len(got) != 1 || got[0] != d.Value {
					t.Errorf("%s=%q, want %s", d.Key, got, d)
				}
			}
			if len(u.h.Writable) > 0 {
				if got, want := lines["ReadWritePaths"], strings.Join(u.h.Writable, " "); len(got) == 0 || got[len(got)-1] != want {
					t.Errorf("ReadWritePaths=%q, want %s last", got, want)
				}
			}
		})
	}
}
