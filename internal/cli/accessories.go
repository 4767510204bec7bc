package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// accessorySpec is what the host is told of accessory name.
func (a *app) accessorySpec(name string) *accessory.Spec {
	c := a.Config.Accessories[name]
	s := &accessory.Spec{App: a.Config.App, Name: name, Service: c.Service, Package: c.Package, Port: c.Port,
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
		s.Offsite = &accessory.Offsite{Location: bucket.Location{Bucket: o.Bucket, Prefix: prefix, Region: o.Region, Endpoint: o.Endpoint}, Recipient: o.Recipient, Keep: o.Keep}
	}
	return s
}

// setupAccessorySpecs are the accessories of each host as setup sends
// them, with their buckets' credentials: what a setup's fingerprint is
// made of, so that staleSetups compares the same thing.
func (a *app) setupAccessorySpecs() (map[string][]*accessory.Spec, error) {
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
func (a *app) offsiteCredentials(specs map[string][]*accessory.Spec) error {
	var vals map[string]string
	for _, list := range specs {
		for _, s := range list {
			o := a.Config.Accessories[s.Name].Backup.Offsite
			if o == nil || o.AccessKeySecret == "" {
				continue
			}
			if vals == nil {
				var err error
				if vals, err = secretsStore(a.Config, a.Repo).Load(); err != nil {
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

// accessoryHost is the host accessory name runs on.
func (a *app) accessoryHost(name string) string {
	if h := a.Config.Accessories[name].Host; h != "" {
		return h
	}
	return a.FirstHost
}

// accessory looks name up in hoist.yml.
func (a *app) accessory(name string) (string, error) {
	if _, ok := a.Config.Accessories[name]; ok {
		return a.accessoryHost(name), nil
	}
	have := a.Config.AccessoryNames()
	if len(have) == 0 {
		return "", usererr.New("%s has no accessories", configName(a.Config)).WithHint("declare them under accessories: (docs/accessories.md)")
	}
	return "", usererr.New("%s has no accessory %s; it has %v", configName(a.Config), name, have)
}

func configName(cfg *config.Config) string {
	if cfg.Destination != "" {
		return "destination " + cfg.Destination
	}
	return config.FileName
}

// accessoriesByHost groups the accessories by the host they run on, and
// refuses one on loopback that an app host elsewhere could not reach.
func (a *app) accessoriesByHost() (map[string][]*accessory.Spec, error) {
	byHost := map[string][]*accessory.Spec{}
	for _, name := range a.Config.AccessoryNames() {
		h := a.accessoryHost(name)
		s := a.accessorySpec(name)
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

// setupHosts are the hosts setup works on: the app's, then the
// accessories' own.
func (a *app) setupHosts() []string {
	hosts := slices.Clone(a.Hosts)
	for _, name := range a.Config.AccessoryNames() {
		hosts = append(hosts, a.accessoryHost(name))
	}
	return unique(hosts)
}

// setupAccessories sets up the accessories of host h and returns how
// the app reaches them; ready is told each one that is set up.
func (a *app) setupAccessories(ctx context.Context, s *streams, h string, specs []*accessory.Spec, conn transport.Conn, ready func(name string)) ([]accessory.Connection, error) {
	var out []accessory.Connection
	for _, spec := range specs {
		c, err := a.Client(conn).SetupAccessory(ctx, spec)
		if err != nil {
			return nil, err
		}
		a.logf(s, h, "accessory %s (%s) is ready on port %d", spec.Name, spec.Service, spec.Port)
		ready(spec.Name)
		out = append(out, c)
	}
	return out, nil
}

// sendAccessoriesEnv writes the accessories' URLs to every app host, as
// secrets travel: in a 0600 file that the app's units read. Setup sends
// it even when there are no accessories, so that one removed from
// hoist.yml leaves the app's environment.
func (a *app) sendAccessoriesEnv(ctx context.Context, members []fleet.Member, conns []accessory.Connection) []fleet.Result {
	vals := map[string]string{}
	for _, c := range conns {
		vals[c.Env] = c.URL
	}
	env := secrets.EnvFile(vals)
	var apps []fleet.Member
	for _, m := range members {
		if slices.Contains(a.Hosts, m.Host) {
			apps = append(apps, m)
		}
	}
	return fleet.EachMember(ctx, apps, a.Config.SSH.Parallel, func(ctx context.Context, _ string, conn transport.Conn) error {
		if err := a.Client(conn).SetAccessoriesEnv(ctx, env); err != nil {
			return fmt.Errorf("send the accessories' URLs: %w", err)
		}
		return nil
	})
}
