// Package deploy is hoist's operations layer: what the verbs do to an
// app's hosts, from the laptop. An operation takes an App (a loaded
// hoist.yml with its hosts, dialer and actor, which the CLI builds from
// its flags and credentials), logs its progress to a writer, and returns
// per host what that host now has; printing is the CLI's. Setup prepares
// the hosts (setup.go), Ship deploys a release that internal/build packed
// (lock, resumable upload, activation behind a health check, unlock),
// Rollback and Restart act on the releases there, Status and Exec ask
// and run on each host (status.go), and PlanDNS, ApplyDNS
// and SyncDNS keep the app's DNS records (dns.go).
package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Spec is what hosts are told about the app.
func Spec(cfg *config.Config) *hostproto.Spec {
	return &hostproto.Spec{
		App: cfg.App, Command: cfg.Run.Command, Port: cfg.Run.Port, Env: cfg.Run.Env,
		HealthPath: cfg.Health.Path, HealthTimeout: cfg.Health.Timeout.Duration,
		HealthInterval: cfg.Health.Interval.Duration, KeepReleases: cfg.KeepReleases,
		BeforeSwitch: cfg.Hooks.BeforeSwitch, AfterSwitch: cfg.Hooks.AfterSwitch, HookTimeout: cfg.Hooks.Timeout.Duration,
		ErlangNetwork: erlangNetwork(cfg.Run.Erlang),
		ProxyHosts:    cfg.Proxy.Hosts, PathPrefix: cfg.Proxy.PathPrefix, DrainTimeout: cfg.Proxy.DrainTimeout.Duration,
		TLS: cfg.Proxy.TLS.On(), TLSInternal: cfg.Proxy.TLS.Mode == config.TLSInternal, HSTS: cfg.Proxy.HSTS, ACMEEmail: cfg.Proxy.ACMEEmail, ACMECA: cfg.Proxy.ACMECA,
		MaxBodyBytes: cfg.Proxy.MaxBodyBytes.Bytes, ErrorPages: cfg.Proxy.Pages,
		TrustedProxies: cfg.Proxy.TrustedProxies,
	}
}

// erlangNetwork is the network an OTP release listens in; "" is loopback.
func erlangNetwork(e config.Erlang) string {
	if e.Listen == config.ListenLoopback {
		return ""
	}
	return e.Listen
}

// ShipOptions says where a release goes.
type ShipOptions struct {
	Config *config.Config
	Hosts  []string
	Dial   fleet.DialFunc
	Log    io.Writer
	LogMu  *sync.Mutex
	// SendEnv says to replace each host's secret environment file with
	// Env before the release starts.
	SendEnv bool
	Env     []byte
	// Meter, when set, follows each host's transfer (a progress bar).
	Meter func(host string, have, total int64) Meter
	// Members are the hosts already dialled (Connect), in the order of
	// Hosts; nil dials them.
	Members []fleet.Member
	// Client makes the host client of a connection (with the
	// destination and who deploys); nil makes a plain one.
	Client func(transport.Conn) *hostclient.Client
	// Verbose shows each host's activation log as it comes, each line
	// prefixed with its host; otherwise only a failure's is shown.
	Verbose bool
	// WorkDir holds the releases packed here: the bases of deltas.
	WorkDir string
	// Full sends every host the whole release, whatever it holds.
	Full bool
	// Balancer, when set, fronts the hosts: each leaves it while it
	// switches.
	Balancer Balancer
	// Stage only puts the release on the hosts: none switches.
	Stage bool
	// Store, when set, is the app's release store: a deploy puts the
	// release there and moves its record, a rollback moves the record
	// back (storeship.go).
	Store *StoreOptions
}

// Connect dials every host of o, so that a deploy can name the hosts it
// cannot reach before it spends time on a build. The caller closes them
// with fleet.Close.
func (o ShipOptions) Connect(ctx context.Context) []fleet.Member {
	return fleet.Connect(ctx, o.Hosts, o.Config.SSH.Parallel, o.Dial)
}

// Meter follows one transfer: Add counts content sent, Done ends it
// with the transfer's result.
type Meter interface {
	Add(n int64)
	Done(err error)
}

// Rollback activates release id (or, when id is "", the one before the
// current release) on every host. ids[i] is the release results[i]'s
// host serves after it, "" where it failed.
func Rollback(ctx context.Context, o ShipOptions, id string) (ids []string, results []fleet.Result) {
	if o.Store != nil {
		return o.rollbackStore(ctx, id)
	}
	spec := Spec(o.Config)
	// A rollback goes back to a release that already ran: migrations and
	// other deploy hooks are not run again.
	spec.BeforeSwitch, spec.AfterSwitch = "", ""
	return o.locked(ctx, Holder("rollback"), func(ctx context.Context, h string, c *hostclient.Client) (string, error) {
		target := id
		if target == "" {
			prev, err := c.Previous(ctx)
			if err != nil {
				return "", err
			}
			if prev == "" {
				return "", usererr.New("there is no earlier release to roll back to")
			}
			target = prev
		}
		o.logf(h)("rolling back to %s", target)
		return activated(target, o.activate(ctx, h, c, spec, target, "rollback"))
	})
}

// activate activates release id on host h, showing its activation log
// when o is verbose, and else only what it warns of; op says what for in
// the host's audit trail.
func (o ShipOptions) activate(ctx context.Context, h string, c *hostclient.Client, spec *hostproto.Spec, id, op string) error {
	log := &fleet.PrefixWriter{W: o.Log, Prefix: h + ": ", Mu: o.LogMu}
	defer log.Flush()
	if o.Verbose {
		return c.Activate(ctx, spec, id, op, log)
	}
	return c.Activate(ctx, spec, id, op, &warnings{w: log})
}

// warnings passes on the lines of an activation log that warn
// ("  1.2s warning: ...").
type warnings struct {
	w   io.Writer
	buf []byte
}

func (f *warnings) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := f.buf[:i+1]
		if _, msg, ok := bytes.Cut(bytes.TrimLeft(line, " "), []byte("s ")); ok && bytes.HasPrefix(msg, []byte("warning:")) {
			if _, err := f.w.Write(line); err != nil {
				return 0, err
			}
		}
		f.buf = f.buf[i+1:]
	}
}

func (o ShipOptions) logf(h string) func(string, ...any) {
	return func(format string, args ...any) {
		if o.LogMu != nil {
			o.LogMu.Lock()
			defer o.LogMu.Unlock()
		}
		fmt.Fprintf(o.Log, "%s: %s\n", h, fmt.Sprintf(format, args...))
	}
}

// locked runs fn on every reachable host while holding the app's deploy
// lock on all of them (lockAll); values[i] is what fn returned on
// results[i]'s host, "" where it did not run.
func (o ShipOptions) locked(ctx context.Context, lk hostproto.Lock, fn func(ctx context.Context, h string, c *hostclient.Client) (string, error)) (values []string, results []fleet.Result) {
	members, unlock, refused, _ := o.lockAll(ctx, lk)
	defer unlock()
	if refused != nil {
		return make([]string, len(refused)), refused
	}
	return fleet.MapMembers(ctx, members, o.Config.SSH.Parallel, func(ctx context.Context, h string, conn transport.Conn) (string, error) {
		return fn(ctx, h, o.clientOf(conn))
	})
}

// activated is what a host serves after activating release id went as
// err says: id, or "" when it failed (the host serves what it did).
// The deploy lock is held, so nothing else switches it meanwhile.
func activated(id string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return id, nil
}

func (o ShipOptions) client(m fleet.Member) *hostclient.Client { return o.clientOf(m.Conn) }

// clientOf is the host client of conn: o.Client's, or a plain one.
func (o ShipOptions) clientOf(conn transport.Conn) *hostclient.Client {
	if o.Client != nil {
		return o.Client(conn)
	}
	return &hostclient.Client{Conn: conn, App: o.Config.App}
}
