package deploy

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// AccessorySpec is what the host is told of accessory name.
func (a *App) AccessorySpec(name string) *hostproto.AccessorySpec {
	c := a.Config.Accessories[name]
	s := &hostproto.AccessorySpec{App: a.Config.App, Name: name, Service: c.Service, Package: c.Package, Port: c.Port,
		Listen: c.Listen, Allow: c.Allow, Database: c.Database, Env: c.Env, BackupKeep: c.Backup.Keep}
	if c.Listen == config.ListenLoopback {
		s.Listen = "127.0.0.1"
	}
	if c.Backup.Schedule != config.BackupOff {
		s.BackupSchedule = c.Backup.Schedule
	}
	if o := c.Backup.Offsite; o != nil {
		prefix := o.Prefix
		if prefix == "" {
			prefix = a.Config.App + "/" + name + "/"
		}
		s.Offsite = &hostproto.Offsite{Location: bucket.Location{Bucket: o.Bucket, Prefix: prefix, Region: o.Region, Endpoint: o.Endpoint}, Recipient: o.Recipient, Keep: o.Keep}
	}
	return s
}

// SetupAccessorySpecs are the accessories of each host as setup sends
// them, with their buckets' credentials: what a setup's fingerprint is
// made of, so that StaleSetups compares the same thing. An accessory on
// loopback that an app host elsewhere could not reach is refused.
func (a *App) SetupAccessorySpecs() (map[string][]*hostproto.AccessorySpec, error) {
	byHost, err := a.accessoriesByHost()
	if err != nil {
		return nil, err
	}
	if err := a.offsiteCredentials(byHost); err != nil {
		return nil, err
	}
	return byHost, nil
}

// offsiteCredentials gives each spec with an off-host bucket the keys
// its hoist.yml names among the app's secrets; with none named, the
// host uses its standard AWS chain.
func (a *App) offsiteCredentials(specs map[string][]*hostproto.AccessorySpec) error {
	var vals map[string]string
	for _, list := range specs {
		for _, s := range list {
			o := a.Config.Accessories[s.Name].Backup.Offsite
			if o == nil || o.AccessKeySecret == "" {
				continue
			}
			if vals == nil {
				var err error
				if vals, err = a.Secrets.Load(); err != nil {
					return err
				}
			}
			id, key := vals[o.AccessKeySecret], vals[o.SecretKeySecret]
			if id == "" || key == "" {
				return usererr.New("accessories.%s.backup.offsite names secrets %s and %s, which are not both set", s.Name, o.AccessKeySecret, o.SecretKeySecret).
					WithHint("hoist secrets set %s, and %s", o.AccessKeySecret, o.SecretKeySecret)
			}
			s.Offsite.AccessKeyID, s.Offsite.SecretAccessKey = id, key
		}
	}
	return nil
}

// AccessoryHost is the host accessory name runs on.
func (a *App) AccessoryHost(name string) string {
	if h := a.Config.Accessories[name].Host; h != "" {
		return h
	}
	return a.FirstHost
}

// accessoriesByHost groups the accessories by the host they run on, and
// refuses one on loopback that an app host elsewhere could not reach.
func (a *App) accessoriesByHost() (map[string][]*hostproto.AccessorySpec, error) {
	byHost := map[string][]*hostproto.AccessorySpec{}
	for _, name := range a.Config.AccessoryNames() {
		h := a.AccessoryHost(name)
		s := a.AccessorySpec(name)
		if s.Listen == "127.0.0.1" {
			for _, ah := range a.Hosts {
				if ah != h {
					return nil, usererr.New("accessory %s listens on loopback on %s, where the app on %s cannot reach it", name, h, ah).
						WithHint("set accessories.%s.listen to a private address of %s, or run the app on %s only", name, h, h)
				}
			}
		}
		byHost[h] = append(byHost[h], s)
	}
	return byHost, nil
}

// SetupHosts are the hosts setup works on: the app's, then the
// accessories' own.
func (a *App) SetupHosts() []string {
	hosts := slices.Clone(a.Hosts)
	for _, name := range a.Config.AccessoryNames() {
		hosts = append(hosts, a.AccessoryHost(name))
	}
	return Unique(hosts)
}

// setupAccessories sets up the accessories of host h and returns how
// the app reaches them; ready is told each one that is set up.
func (a *App) setupAccessories(ctx context.Context, log io.Writer, h string, specs []*hostproto.AccessorySpec, conn transport.Conn, ready func(name string)) ([]hostproto.AccessoryConnection, error) {
	var out []hostproto.AccessoryConnection
	for _, spec := range specs {
		c, err := a.Client(conn).SetupAccessory(ctx, spec)
		if err != nil {
			return nil, err
		}
		a.Logf(log, h, "accessory %s (%s) is ready on port %d", spec.Name, spec.Service, spec.Port)
		ready(spec.Name)
		out = append(out, c)
	}
	return out, nil
}

// sendAccessoriesEnv writes the accessories' URLs to every app host, as
// secrets travel: in a 0600 file that the app's units read. Setup sends
// it even when there are no accessories, so that one removed from
// hoist.yml leaves the app's environment.
func (a *App) sendAccessoriesEnv(ctx context.Context, members []fleet.Member, conns []hostproto.AccessoryConnection) []fleet.Result {
	vals := map[string]string{}
	for _, c := range conns {
		vals[c.Env] = c.URL
	}
	env := secrets.EnvFile(vals)
	return fleet.EachMember(ctx, a.appMembers(members), a.Config.SSH.Parallel, func(ctx context.Context, _ string, conn transport.Conn) error {
		if err := a.Client(conn).SetAccessoriesEnv(ctx, env); err != nil {
			return fmt.Errorf("send the accessories' URLs: %w", err)
		}
		return nil
	})
}

// WarnBackups writes to log a warning for each accessory whose last
// scheduled backup failed or whose newest backup is older than twice
// its schedule's period: setup and deploy call it, so that a backup
// that stopped working is seen. A host it cannot ask is left to `hoist
// accessory status`: the operation that called it succeeded.
func (a *App) WarnBackups(ctx context.Context, log io.Writer) {
	var hosts []string
	for _, n := range a.Config.AccessoryNames() {
		if a.AccessorySpec(n).BackupSchedule != "" {
			hosts = append(hosts, a.AccessoryHost(n))
		}
	}
	if len(hosts) == 0 {
		return
	}
	hosts = Unique(hosts)
	sts, results := fleet.Map(ctx, hosts, a.Config.SSH.Parallel, a.Dial, func(ctx context.Context, _ string, conn transport.Conn) ([]hostproto.AccessoryStatus, error) {
		return a.Client(conn).AccessoryStatus(ctx, "")
	})
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		for _, st := range sts[i] {
			if st.BackupWarning != "" {
				fmt.Fprintf(log, "%s: warning: accessory %s: %s (hoist accessory status %s)\n", r.Host, st.Name, st.BackupWarning, st.Name)
			}
		}
	}
}
