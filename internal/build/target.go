package build

import (
	"fmt"
	"strings"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/usererr"
)

// osNames are the platforms' names for people.
var osNames = map[string]string{"darwin": "macOS (Mach-O)", "linux": "Linux (ELF)"}

func osName(goos string) string {
	if n := osNames[goos]; n != "" {
		return n
	}
	return goos
}

// checkBuiltFor refuses a release whose binaries are not for b.Target
// (with the hint of r, the builder's registration),
// before anything is packed or sent: a build on a Mac that ignored GOOS,
// or bundled the Mac's own Erlang runtime, makes Mach-O binaries no
// Linux host runs.
func checkBuiltFor(b config.Build, r Registration, needs release.Needs) error {
	goos, arch, _ := strings.Cut(b.Target, "/")
	switch {
	case needs.OS == "":
		return nil
	case needs.OS != goos:
		e := usererr.New("the release holds %s binaries (%s is %s/%s) but build.target is %s",
			osName(needs.OS), needs.File, needs.OS, needs.Arch, b.Target)
		return e.WithHint("%s", r.WrongOS(goos, b.Target))
	case needs.Arch != arch:
		return usererr.New("build.target is %s but the build made %s binaries (%s)", b.Target, needs.Arch, needs.File).
			WithHint("make the build honour GOOS/GOARCH (set by hoist), or set build.target to what it builds")
	}
	return nil
}

// localWrongOS is the local builder's hint: the build runs on this
// machine, which may be a Mac.
func localWrongOS(goos, _ string) string {
	return fmt.Sprintf("a local build must make %s binaries: a Go build does when it honours GOOS=%s, which hoist sets from build.target (do not set GOOS in build.command); a release that bundles a runtime (Elixir/Erlang) must be built on %s: use builder: container (Docker Desktop, OrbStack, colima or podman machine) or builder: remote (docs/builders.md)",
		goos, goos, goos)
}

// elsewhereWrongOS is the hint of a builder that builds in an image or
// on a build host.
func elsewhereWrongOS(goos, target string) string {
	return fmt.Sprintf("build with a %s image or build host for %s, or set build.target to what the build makes", goos, target)
}
