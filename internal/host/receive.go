package host

import (
	"fmt"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
)

func checkManifest(l Layout, m *release.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.App != l.App {
		return fmt.Errorf("release %s is for app %q, not %q", m.ID, m.App, l.App)
	}
	return checkTarget(m, Facts())
}

// checkTarget refuses a release this host cannot run, before a byte of
// it is sent.
func checkTarget(m *release.Manifest, f hostproto.HostFacts) error {
	if m.OS != f.OS || m.Arch != f.Arch {
		return fmt.Errorf("release %s is built for %s/%s but this host is %s/%s; set build.target to %s/%s",
			m.ID, m.OS, m.Arch, f.OS, f.Arch, f.OS, f.Arch)
	}
	if m.GLIBC != "" && release.CompareVersions(m.GLIBC, f.GLIBC) > 0 {
		if f.GLIBC == "" {
			return fmt.Errorf("release %s needs glibc %s but this host has no glibc; build it statically", m.ID, m.GLIBC)
		}
		return fmt.Errorf("release %s needs glibc %s but this host has %s; build it on a distribution no newer than the host's (builder: rootfs)", m.ID, m.GLIBC, f.GLIBC)
	}
	return nil
}
