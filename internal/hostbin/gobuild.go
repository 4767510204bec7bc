package hostbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// GoBuilder returns a Build for Finder that builds hoist for a platform
// with the go command, from the module version this hoist was built
// from (go install MODULE/cmd/hoist@VERSION, cross-compiled, without
// cgo); nil when there is no go command, or this hoist has no module
// version (a build from a checkout, which has scripts/release.sh).
func GoBuilder(bi *debug.BuildInfo, goCmd string) func(ctx context.Context, platform, out string) error {
	if bi == nil || bi.Main.Path != Module || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return nil
	}
	if goCmd == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return nil
		}
		goCmd = p
	}
	version := bi.Main.Version
	return func(ctx context.Context, platform, out string) error {
		goos, goarch, _ := strings.Cut(platform, "/")
		gopath, err := os.MkdirTemp(filepath.Dir(out), ".gopath-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(gopath)
		env := []string{"GOOS=" + goos, "GOARCH=" + goarch, "CGO_ENABLED=0", "GOPATH=" + gopath, "GOFLAGS=-trimpath"}
		// The module and build caches stay the usual ones: a second
		// platform, or the next version, downloads little.
		for _, v := range []string{"GOMODCACHE", "GOCACHE"} {
			if dir, err := exec.CommandContext(ctx, goCmd, "env", v).Output(); err == nil && strings.TrimSpace(string(dir)) != "" {
				env = append(env, v+"="+strings.TrimSpace(string(dir)))
			}
		}
		cmd := exec.CommandContext(ctx, goCmd, "install", Module+"/cmd/hoist@"+version)
		cmd.Env = append(withoutGoEnv(os.Environ()), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install %s/cmd/hoist@%s for %s: %w: %s", Module, version, platform, err, strings.TrimSpace(string(b)))
		}
		// A cross-compiled command goes to bin/GOOS_GOARCH.
		built := filepath.Join(gopath, "bin", goos+"_"+goarch, "hoist")
		if err := os.Rename(built, out); err != nil {
			return fmt.Errorf("go install for %s: %w", platform, err)
		}
		return nil
	}
}

// withoutGoEnv drops the variables GoBuilder sets, and GOBIN, with
// which go refuses to install a cross-compiled command.
func withoutGoEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOPATH", "GOBIN", "GOFLAGS", "GOMODCACHE", "GOCACHE":
			continue
		}
		out = append(out, kv)
	}
	return out
}
