package provision

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/usererr"
)

// labProvider makes hosts as lab machines on this machine, booted from
// the bare cloud image: no key and no hoist on them until cloud-init
// runs the user data, as on a cloud. The lab's labels play the part of
// tags.
type labProvider struct {
	spec Spec
	o    lab.Options
}

// NewLab returns the lab provider for spec. knownHosts is hoist's
// known_hosts, from which the hosts' keys are removed when they go.
func NewLab(spec Spec, knownHosts string, log io.Writer) Provider {
	return &labProvider{spec: spec, o: lab.Options{
		Name: LabName(spec), KnownHostsPath: knownHosts, Log: log, Labels: spec.Tags(),
	}}
}

// LabName is the lab that holds an app's env: "p" and a hash of both,
// within the lab's limit of 8 characters.
func LabName(s Spec) string {
	h := fnv.New32a()
	h.Write([]byte(s.App + "/" + s.Env))
	name := "p" + strconv.FormatUint(uint64(h.Sum32()), 36)
	return name[:min(len(name), 8)]
}

const labKind = "lab host"

func (p *labProvider) Desired() []Resource {
	var out []Resource
	for i := 0; i < p.spec.Count; i++ {
		out = append(out, Resource{Kind: labKind, Name: p.spec.HostName(i), Props: labProps(true), Mutable: true})
	}
	return out
}

func labProps(running bool) string {
	if running {
		return "running; bare Debian 12 image with cloud-init"
	}
	return "stopped; bare Debian 12 image with cloud-init"
}

func (p *labProvider) Observe(ctx context.Context) (*Inventory, error) {
	labels, exists, err := lab.LabelsOf(p.o)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{}
	if !exists {
		return inv, nil
	}
	if !maps.Equal(labels, p.o.Labels) {
		return nil, usererr.New("lab %s holds hosts that are not %s's %s (its labels: %v)", p.o.Name, p.spec.App, p.spec.Env, labels).
			WithHint("`hoist lab down --name %s` removes them", p.o.Name)
	}
	st, err := lab.Status(ctx, p.o)
	if err != nil {
		return nil, err
	}
	for i, hs := range st {
		name := p.spec.HostName(i)
		inv.Resources = append(inv.Resources, Resource{Kind: labKind, Name: name, ID: hs.Name, Props: labProps(hs.Running)})
		inv.Hosts = append(inv.Hosts, Host{Name: name, ID: hs.Name, PublicAddr: hs.Addr, PrivateAddr: hs.Addr})
	}
	return inv, nil
}

func (p *labProvider) Apply(ctx context.Context, changes []Change, env ApplyEnv) error {
	o := p.o
	o.Log = env.Log
	o.UserData = func(h lab.Host) ([]byte, error) {
		i, err := strconv.Atoi(h.Name[strings.LastIndexByte(h.Name, '-')+1:])
		if err != nil {
			return nil, fmt.Errorf("lab host %s: %w", h.Name, err)
		}
		return env.UserData(ctx, p.spec.HostName(i))
	}
	for _, c := range changes {
		if c.Action == Delete {
			if err := lab.Trim(ctx, o, p.spec.Count); err != nil {
				return err
			}
			break
		}
	}
	// Up makes missing hosts and boots stopped ones.
	_, err := lab.Up(ctx, o, p.spec.Count)
	return err
}

func (p *labProvider) Destroy(ctx context.Context, _ *Inventory, log io.Writer) error {
	o := p.o
	o.Log = log
	return lab.Down(ctx, o)
}
