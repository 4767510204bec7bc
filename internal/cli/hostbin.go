package cli

import (
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/hostbin"
	"github.com/hoistdev/hoist/internal/platform"
)

// hoistBinaryFlag is --hoist-binary, for the verbs that set hosts up.
func hoistBinaryFlag(cmd *cobra.Command, binaries *[]string) {
	cmd.Flags().StringArrayVar(binaries, "hoist-binary", nil,
		"hoist to install on the hosts of its platform, instead of the one found (repeatable: one per platform; a PATH.sha256 or SHA256SUMS beside it is checked)")
}

// hostFinder finds the hoist each host platform gets: given ones, this
// binary, the host binaries of a release archive beside it
// (../lib/hoist, or $HOIST_HOST_BINARIES), else a build with Go.
func hostFinder(log io.Writer, given []string) *hostbin.Finder {
	f := &hostbin.Finder{SelfPlatform: platform.Self(), Given: given, Log: log,
		BuildDir: filepath.Join(cacheDir(), "hoist-builds")}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		f.Self = exe
		f.Dirs = append(f.Dirs, filepath.Join(filepath.Dir(exe), "..", "lib", "hoist"), filepath.Dir(exe))
	}
	if Version != "dev" && Commit != "" {
		// A release build: its own build information omits the -ldflags
		// that stamped it; its archive's lib/hoist/BUILD says the same.
		f.SelfIdentity = hostbin.ReleaseIdentity(Version, Commit)
	}
	if d := os.Getenv("HOIST_HOST_BINARIES"); d != "" {
		f.Dirs = append([]string{d}, f.Dirs...)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		f.Build = hostbin.GoBuilder(bi, "")
	}
	return f
}
