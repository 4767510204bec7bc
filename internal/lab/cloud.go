package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hoistdev/hoist/internal/filelock"
	"github.com/hoistdev/hoist/internal/usererr"
)

// The bare cloud image is the base tree made into what a cloud boots:
// cloud-init and sudo installed, no host keys, an empty machine id, no
// key that logs in and no hoist. cloud-init reads a NoCloud seed that
// each host gets in /var/lib/cloud/seed/nocloud, and does on the first
// boot exactly what it does on a cloud with the same user data.
const cloudReady = "usr/bin/cloud-init"

// cloudPrepare runs inside the image while it is built.
const cloudPrepare = `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends cloud-init sudo >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance
# As a cloud image ships it: nothing of the machine it was built on; the
# host's name gets its line from cloud-init (manage_etc_hosts).
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts
mkdir -p /etc/cloud/cloud.cfg.d
# Only the seed on disk, as a NoCloud image; the lab sets each host's
# network from outside before boot, as a cloud's DHCP would.
cat > /etc/cloud/cloud.cfg.d/90-hoist-lab.cfg <<'CFG'
datasource_list: [ NoCloud, None ]
network: {config: disabled}
CFG
`

// EnsureCloudImage returns the bare cloud image for o.Suite, making it
// from the base tree when missing: apt installs cloud-init in it
// (debootstrap cannot resolve cloud-init's dependencies). It is built in
// a .partial directory and renamed when complete.
func EnsureCloudImage(ctx context.Context, o Options) (string, error) {
	if err := o.defaults(); err != nil {
		return "", err
	}
	img := filepath.Join(o.CacheDir, "cloud-"+o.Suite)
	if exists(filepath.Join(img, cloudReady)) {
		return img, nil
	}
	base, err := ensureBase(ctx, o)
	if err != nil {
		return "", err
	}
	l, err := filelock.Acquire(ctx, img+".lock", 15*time.Minute)
	if err != nil {
		return "", err
	}
	defer l.Release()
	if exists(filepath.Join(img, cloudReady)) {
		return img, nil
	}
	if exists(img) {
		return "", usererr.New("lab cache %s exists but holds no complete cloud image", img).
			WithHint("remove it (rm -rf %s) and run again", img)
	}
	partial := img + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return "", fmt.Errorf("lab cloud image: %w", err)
	}
	fmt.Fprintf(o.Log, "making the bare %s cloud image with cloud-init (once; under a minute)\n", o.Suite)
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", base+"/.", partial).CombinedOutput(); err != nil {
		os.RemoveAll(partial)
		return "", fmt.Errorf("copy base tree to %s: %w: %s", partial, err, lastLines(string(out), 5))
	}
	out, err := exec.CommandContext(ctx, "systemd-nspawn", "-q", "-D", partial, "--register=no", "--keep-unit", "--as-pid2",
		"/bin/sh", "-c", cloudPrepare).CombinedOutput()
	if err != nil {
		os.RemoveAll(partial)
		return "", fmt.Errorf("install cloud-init in the lab image: %w:\n%s", err, lastLines(string(out), 10))
	}
	if err := os.Rename(partial, img); err != nil {
		return "", fmt.Errorf("lab cloud image: %w", err)
	}
	return img, nil
}

// seed gives a fresh tree from the cloud image what a cloud gives an
// instance: a NoCloud seed with its meta-data and user data.
func (m *machine) seed(root string, o Options) error {
	ud, err := o.UserData(m.Host)
	if err != nil {
		return fmt.Errorf("user data for %s: %w", m.Name, err)
	}
	id, err := randomHex(8)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "var/lib/cloud/seed/nocloud")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seed %s: %w", m.Name, err)
	}
	meta := fmt.Sprintf("instance-id: %s-%s\nlocal-hostname: %s\n", m.Name, id, m.Name)
	for name, data := range map[string][]byte{"meta-data": []byte(meta), "user-data": ud} {
		// Root-only: the user data holds the host's first private key.
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("seed %s: %w", m.Name, err)
		}
	}
	return nil
}
