package accessory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// flavor is Debian's packaging of Redis or of Valkey, its fork: both
// ship a template unit, NAME-server@.service, that runs an instance
// from /etc/NAME/NAME-INSTANCE.conf, as the package's user.
type flavor struct {
	name        string // redis, valkey
	defaultUnit string // the instance the package starts on install
	user        string
	etc, data   string
	log         string
	cli         string
}

var (
	redisFlavor  = flavor{name: "redis", defaultUnit: "redis-server.service", user: "redis", etc: "/etc/redis", data: "/var/lib/redis", log: "/var/log/redis", cli: "redis-cli"}
	valkeyFlavor = flavor{name: "valkey", defaultUnit: "valkey-server.service", user: "valkey", etc: "/etc/valkey", data: "/var/lib/valkey", log: "/var/log/valkey", cli: "valkey-cli"}
)

// systemdUnits is where packages put their units.
var systemdUnits = []string{"/lib/systemd/system", "/usr/lib/systemd/system"}

type redis struct {
	s     *hostproto.AccessorySpec
	f     flavor
	owner *user.User
}

func newRedis(f flavor) func(s *hostproto.AccessorySpec) (engine, error) {
	return func(s *hostproto.AccessorySpec) (engine, error) {
		u, err := user.Lookup(f.user)
		if err != nil {
			return nil, fmt.Errorf("accessory %s: %s's system user: %w", s.Name, f.name, err)
		}
		tmpl := f.name + "-server@.service"
		for _, dir := range systemdUnits {
			if _, err := os.Stat(filepath.Join(dir, tmpl)); err == nil {
				return &redis{s: s, f: f, owner: u}, nil
			}
		}
		return nil, fmt.Errorf("accessory %s: the %s package on this host has no %s, which runs one instance per accessory", s.Name, f.name, tmpl)
	}
}

func (r *redis) unit() string { return r.f.unit(r.s) }

// unit is the instance of f's template that runs s.
func (f flavor) unit(s *hostproto.AccessorySpec) string {
	return f.name + "-server@" + instance(s) + ".service"
}

func (f flavor) owns(s *hostproto.AccessorySpec, unit string) bool { return unit == f.unit(s) }
func (r *redis) confFile() string                                  { return filepath.Join(r.f.etc, r.f.name+"-"+instance(r.s)+".conf") }
func (r *redis) dataDir() string                                   { return filepath.Join(r.f.data, instance(r.s)) }

func (r *redis) version() string {
	out, err := exec.Command(r.f.name+"-server", "--version").Output()
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return ""
}

func (r *redis) create(ctx context.Context, log io.Writer) error {
	if _, err := os.Stat(r.dataDir()); err == nil {
		return nil
	}
	fmt.Fprintf(log, "creating %s instance %s\n", r.f.name, instance(r.s))
	uid, gid := ids(r.owner)
	if err := os.MkdirAll(r.dataDir(), 0o750); err != nil {
		return fmt.Errorf("accessory %s: %w", r.s.Name, err)
	}
	if err := os.Chown(r.dataDir(), uid, gid); err != nil {
		return fmt.Errorf("accessory %s: %w", r.s.Name, err)
	}
	return nil
}

var redisConf = template.Must(template.New("redis").Parse(`# Written by hoist; changes are overwritten by hoist setup.
bind {{.Listen}}
protected-mode yes
port {{.Port}}
requirepass {{.Password}}
supervised systemd
daemonize no
dir {{.Dir}}
dbfilename dump.rdb
# Every write is in the append-only file, and snapshots are taken too:
# the data outlives restarts, deploys and upgrades.
appendonly yes
appendfsync everysec
save 3600 1 300 100 60 10000
# Into the journal of the instance's unit.
logfile ""
pidfile /run/{{.Name}}-{{.Instance}}/{{.Name}}-server.pid
`))

func (r *redis) configure(password string) (bool, error) {
	var b bytes.Buffer
	_ = redisConf.Execute(&b, map[string]any{"Listen": r.s.Listen, "Port": r.s.Port, "Password": password,
		"Dir": r.dataDir(), "Name": r.f.name, "Instance": instance(r.s)})
	_, gid := ids(r.owner)
	// The file holds the password: readable by the service's group only.
	changed, err := writeIfChanged(r.confFile(), b.Bytes(), 0o640, 0, gid)
	if err != nil {
		return false, fmt.Errorf("accessory %s: %w", r.s.Name, err)
	}
	return changed, nil
}

func (r *redis) hardening() hardening {
	return hardening{Paths: []string{r.dataDir(), "-" + r.f.log}}
}

func (r *redis) ready(ctx context.Context) error {
	// Type=notify: systemd's start returns once the server said ready.
	deadline := time.Now().Add(30 * time.Second)
	addr := net.JoinHostPort(r.s.Listen, strconv.Itoa(r.s.Port))
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("accessory %s: %s does not accept connections on %s: %w", r.s.Name, r.f.name, addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (r *redis) provision(context.Context, string) error { return nil }

func (r *redis) url(password string) string {
	u := url.URL{Scheme: "redis", User: url.UserPassword("", password), Host: net.JoinHostPort(r.s.Listen, strconv.Itoa(r.s.Port)), Path: "/0"}
	return u.String()
}
