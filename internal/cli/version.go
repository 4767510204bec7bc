package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/hoistdev/hoist/internal/hostbin"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/platform"
)

// The host protocol names this hoist's version at either end when they
// speak different protocols (hostproto.VersionError).
func init() { hostproto.Hoist = version() }

// version is this hoist's version: the one the release script sets, or
// else the module version go install built.
func version() string {
	if Version == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return Version
}

// commit is the commit this hoist was built from: the VCS stamp Go puts
// in a build from a checkout, or the one a pseudo-version names.
func commit() string {
	if Commit != "" {
		// The release script stamps the whole hash, +dirty from a
		// changed tree: shown as short as Go's own stamp is.
		rev, dirty := strings.CutSuffix(Commit, "+dirty")
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		return rev
	}
	bi, _ := debug.ReadBuildInfo()
	return commitOf(bi)
}

// commitOf is the commit build information names. go install of a
// tagged version records the tag and no commit (Go keeps no VCS stamp
// for a downloaded module): the tag names the commit then.
func commitOf(bi *debug.BuildInfo) string {
	if bi == nil {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	v := bi.Main.Version
	if rev == "" {
		// v0.0.0-20261125014500-4c04374a1b2c, v0.1.1-0.20261125014500-4c04374a1b2c
		f := strings.Split(strings.TrimSuffix(v, "+dirty"), "-")
		switch {
		case len(f) >= 3 && len(f[len(f)-1]) == 12 && len(f[len(f)-2]) >= 14:
			rev = f[len(f)-1]
		case strings.HasPrefix(v, "v") && v != "(devel)":
			return "tagged " + v
		default:
			return "unknown"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// versionText is what hoist --version prints: the version, the commit,
// and the host platforms this hoist can set up, with where each one's
// hoist comes from.
func versionText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hoist %s (commit %s, %s, %s)\n", version(), commit(), runtime.Version(), platform.Self())
	have, canBuild := hostFinder(io.Discard, nil).Available()
	var can, cannot []string
	for _, p := range hostbin.Platforms {
		switch {
		case have[p] != "":
			can = append(can, fmt.Sprintf("%s (%s)", p, have[p]))
		case canBuild:
			can = append(can, p+" (built with Go when needed)")
		default:
			cannot = append(cannot, p)
		}
	}
	if len(can) > 0 {
		fmt.Fprintf(&b, "sets up hosts of: %s\n", strings.Join(can, ", "))
	}
	if len(cannot) > 0 {
		fmt.Fprintf(&b, "not of: %s (no hoist for them here; hoist setup says what to fetch)\n", strings.Join(cannot, ", "))
	}
	return b.String()
}
