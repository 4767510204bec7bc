package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Lab hosts cannot reach a Debian mirror: they sit on a private bridge
// with no route out. The packages hoist installs on hosts with apt (an
// accessory's postgresql or redis-server) come from a local repository
// instead: the lab downloads them once, with what they depend on that the
// base tree lacks, into a cached flat repository, and every host reads it
// read-only at AptRepoMount, its only apt source. hoist's host role then
// runs apt-get update and apt-get install as on any host.

// AptRepoMount is where lab hosts see the local repository.
const AptRepoMount = "/var/lib/hoist-lab/apt"

// aptRepoReady is the index every complete repository has.
const aptRepoReady = "Packages"

// aptRepoPrepare runs in a scratch copy of the base tree, on this
// machine's network; the packages are its arguments.
const aptRepoPrepare = `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get clean
apt-get update -qq
apt-get install --download-only -y -qq --no-install-recommends "$@" >/dev/null
mkdir -p /repo
cp /var/cache/apt/archives/*.deb /repo/
apt-get install -y -qq --no-install-recommends apt-utils >/dev/null
cd /repo
apt-ftparchive packages . > Packages
`

var debName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// aptSources is the lab hosts' apt configuration: the local repository
// only, so that apt never waits on a mirror it cannot reach.
var aptSources = map[string]string{
	"etc/apt/sources.list":                  "# lab host: packages come from " + AptRepoMount + " (see hoist-lab.list)\n",
	"etc/apt/sources.list.d/hoist-lab.list": "deb [trusted=yes] file:" + AptRepoMount + " ./\n",
}

// ensureAptRepo returns the cached repository holding packages and
// their dependencies, making it when missing. Like the base tree it is
// built in a .partial directory, renamed when complete, under a lock.
func ensureAptRepo(ctx context.Context, o Options, base string, packages []string) (string, error) {
	pkgs := slices.Clone(packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	for _, p := range pkgs {
		if !debName.MatchString(p) {
			return "", usererr.New("%q is not a Debian package name", p)
		}
	}
	sum := sha256.Sum256([]byte(filepath.Base(base) + "\n" + strings.Join(pkgs, "\n")))
	repo := filepath.Join(o.CacheDir, "apt-"+o.Suite+"-"+hex.EncodeToString(sum[:4]))
	if exists(filepath.Join(repo, aptRepoReady)) {
		return repo, nil
	}
	l, err := filelock.Acquire(ctx, repo+".lock", 15*time.Minute)
	if err != nil {
		return "", err
	}
	defer l.Release()
	if exists(filepath.Join(repo, aptRepoReady)) {
		return repo, nil
	}
	if exists(repo) {
		return "", usererr.New("lab cache %s exists but holds no complete repository", repo).
			WithHint("remove it (rm -rf %s) and run again", repo)
	}
	scratch := repo + ".partial"
	if err := os.RemoveAll(scratch); err != nil {
		return "", fmt.Errorf("lab apt repository: %w", err)
	}
	defer os.RemoveAll(scratch)
	fmt.Fprintf(o.Log, "downloading %s for the lab hosts (once)\n", strings.Join(pkgs, ", "))
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", base+"/.", scratch).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy base tree to %s: %w: %s", scratch, err, lastLines(string(out), 5))
	}
	args := append([]string{"-q", "-D", scratch, "--register=no", "--keep-unit", "--as-pid2", "/bin/sh", "-c", aptRepoPrepare, "sh"}, pkgs...)
	if out, err := exec.CommandContext(ctx, "systemd-nspawn", args...).CombinedOutput(); err != nil {
		return "", usererr.New("cannot download %s for the lab: %v:\n%s", strings.Join(pkgs, ", "), err, lastLines(string(out), 10)).
			WithHint("this machine must reach the Debian mirror once, and the names must be packages of Debian %s", o.Suite)
	}
	if err := os.Rename(filepath.Join(scratch, "repo"), repo); err != nil {
		return "", fmt.Errorf("lab apt repository: %w", err)
	}
	return repo, nil
}

// useAptRepo points a host's apt at the local repository.
func useAptRepo(root string) error {
	if err := os.MkdirAll(filepath.Join(root, AptRepoMount), 0o755); err != nil {
		return fmt.Errorf("apt sources: %w", err)
	}
	for name, content := range aptSources {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("apt sources: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("apt sources: %w", err)
		}
	}
	// deb822 sources of a newer base would still name the mirror.
	if err := os.Remove(filepath.Join(root, "etc/apt/sources.list.d/debian.sources")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("apt sources: %w", err)
	}
	return nil
}
