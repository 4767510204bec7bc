package build

import (
	"fmt"
	"github.com/hoistdev/hoist/internal/registry"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/platform"
)

// Registration is a builder as build.builder names it: what makes it
// from the build section, and what it asks of that section. Each
// builder registers itself here; config checks build.builder through
// the registry, so that a new builder is one file of this package.
type Registration struct {
	Name string
	New  func(b config.Build, d Deps) (Builder, error)
	// Check validates the builder's own fields of the build section,
	// returning config.FieldError so that the error names its line.
	Check func(c *config.Config) error
	// BuildsCaches says the builder keeps build.caches itself, where it
	// builds (the remote builder, on its build host); hoist keeps every
	// other builder's on this machine.
	BuildsCaches bool
	// WrongOS is the hint for a release whose binaries are not for goos,
	// build.target's (target) system: what to do with this builder.
	WrongOS func(goos, target string) string
}

var builders = registry.Of[Registration]{Kind: "build: builder"}

// Register adds a builder, and its checks to config's. It panics when
// the name is taken.
func Register(r Registration) {
	builders.Add(r.Name, r)
	config.RegisterBuilder(r.Name, r.Check)
}

// registrationOf is the registration of the builder b names (local
// when it names none).
func registrationOf(b config.Build) (Registration, bool) {
	name := b.Builder
	if name == "" {
		name = "local"
	}
	return Lookup(name)
}

// Lookup returns the builder registered as name.
func Lookup(name string) (Registration, bool) {
	return builders.Lookup(name)
}

// Names are the registered builders, sorted.
func Names() []string {
	return builders.Names()
}

// The builders hoist has. Each one's checks are here, beside how it is
// made; how it builds is in its own file.
func init() {
	Register(Registration{Name: "local", WrongOS: localWrongOS,
		New: func(config.Build, Deps) (Builder, error) { return Local{}, nil }})
	Register(Registration{Name: "rootfs", Check: checkRootfs, WrongOS: elsewhereWrongOS,
		New: func(b config.Build, d Deps) (Builder, error) {
			if err := platform.Check(platform.RootfsBuilder); err != nil {
				return nil, err
			}
			return &Rootfs{Distro: b.Distro, Packages: b.Packages, CacheDir: filepath.Join(d.CacheDir, "rootfs")}, nil
		}})
	Register(Registration{Name: "container", Check: checkContainer, WrongOS: elsewhereWrongOS,
		New: func(b config.Build, _ Deps) (Builder, error) {
			return &Container{Image: b.Image, Dockerfile: b.Dockerfile}, nil
		}})
	Register(Registration{Name: "remote", Check: checkRemote, WrongOS: elsewhereWrongOS, BuildsCaches: true,
		New: func(b config.Build, d Deps) (Builder, error) {
			if d.Dial == nil {
				return nil, fmt.Errorf("remote builder: no dialer")
			}
			return &Remote{Host: b.Host, Dial: d.Dial, Caches: b.Caches}, nil
		}})
}

func checkRootfs(c *config.Config) error {
	if c.Build.Distro == "" {
		return config.FieldError("$.build.distro", "missing; the rootfs builder needs a distribution like debian/bookworm")
	}
	if d, r, ok := strings.Cut(c.Build.Distro, "/"); !ok || (d != "debian" && d != "ubuntu") || r == "" {
		return config.FieldError("$.build.distro", "%q is not NAME/RELEASE with NAME debian or ubuntu, for example debian/bookworm", c.Build.Distro)
	}
	return nil
}

func checkContainer(c *config.Config) error {
	if (c.Build.Image == "") == (c.Build.Dockerfile == "") {
		return config.FieldError("$.build.image", "the container builder needs exactly one of build.image and build.dockerfile")
	}
	return nil
}

func checkRemote(c *config.Config) error {
	if c.Build.Host == "" {
		return config.FieldError("$.build.host", "missing; the remote builder needs a build host")
	}
	return nil
}
