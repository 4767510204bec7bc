package accessory

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// InstallError says that an accessory's package could not be installed.
type InstallError struct {
	Name, Package string
	// Output is the end of apt-get's output.
	Output string
}

func (e *InstallError) Error() string {
	return fmt.Sprintf("accessory %s: the package %s cannot be installed on this host, so the accessory was not set up:\n%s\n"+
		"check accessories.%s's service and package in hoist.yml, and that the host's apt sources (apt-get update) offer it", e.Name, e.Package, e.Output, e.Name)
}

// installTimeout bounds apt-get: a mirror that hangs must not hang setup.
const installTimeout = 15 * time.Minute

// ensurePackage installs pkg with apt-get unless it is installed, and
// reports whether it installed it. before runs first when it does.
func ensurePackage(ctx context.Context, name, pkg string, before func() error, log io.Writer) (bool, error) {
	if packageInstalled(ctx, pkg) {
		return false, nil
	}
	if before != nil {
		if err := before(); err != nil {
			return false, err
		}
	}
	fmt.Fprintf(log, "installing %s with apt-get\n", pkg)
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	for _, args := range [][]string{
		{"update", "-qq"},
		{"install", "-y", "-qq", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", pkg},
	} {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil {
			msg := lastLines(strings.TrimSpace(string(out)), 8)
			if msg == "" {
				msg = err.Error()
			}
			return false, &InstallError{Name: name, Package: pkg, Output: "apt-get " + args[0] + ": " + msg}
		}
	}
	if !packageInstalled(ctx, pkg) {
		return false, &InstallError{Name: name, Package: pkg, Output: "apt-get reported success, but dpkg does not list it as installed"}
	}
	return true, nil
}

func packageInstalled(ctx context.Context, pkg string) bool {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.TrimSpace(string(out)) == "install ok installed"
}
