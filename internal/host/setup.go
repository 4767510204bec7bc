package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"

	"github.com/hoistdev/hoist/internal/systemd"
)

// Setup prepares a host for app: its system user, its directories, its
// units. Running it again changes only what differs.
func Setup(ctx context.Context, l Layout, s *Spec) (HostFacts, error) {
	facts, err := RecordFacts(l.Base())
	if err != nil {
		return facts, err
	}
	return facts, setup(ctx, l, s)
}

func setup(ctx context.Context, l Layout, s *Spec) error {
	if err := ensureUser(ctx, l.User()); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{l.Root, 0o755}, {l.Releases(), 0o755}, {l.Uploads(), 0o700}, {l.Shared(), 0o700},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	// The app's writable directory, which systemd's StateDirectory= would
	// make at first start; hooks may need it before that.
	if err := ensureStateDir(l); err != nil {
		return err
	}
	if _, err := os.Stat(l.EnvFile()); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(l.EnvFile(), nil, 0o600); err != nil {
			return err
		}
	}
	if _, err := installUnits(ctx, l, s); err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "enable", systemd.BootName(l.App)); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if s.Proxied() {
		// The proxy's user owns the certificate plan it reads: make it
		// before the plan is written.
		if err := ensureUser(ctx, ProxyUser); err != nil {
			return err
		}
	}
	if err := writeCertPlan(ProxyTLSPlans, s); err != nil {
		return err
	}
	if s.Proxied() {
		return installProxy(ctx, s)
	}
	return nil
}

func ensureUser(ctx context.Context, name string) error {
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "useradd", "--system", "--user-group",
		"--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("create user %s: %w: %s", name, err, bytes.TrimSpace(errb.Bytes()))
	}
	return nil
}

// installUnits writes the app's units where they differ and reloads
// systemd if any did. It reports whether anything changed.
func installUnits(ctx context.Context, l Layout, s *Spec) (bool, error) {
	units, err := appUnits(l, s)
	if err != nil {
		return false, err
	}
	return writeUnits(ctx, units)
}

// appUnits renders the app's units, by file name.
func appUnits(l Layout, s *Spec) (map[string][]byte, error) {
	dest, _, err := recordedDestination(l)
	if err != nil {
		return nil, err
	}
	a := systemd.App{
		Name: l.App, User: l.User(), ReleaseDir: l.Release("%i"), PortFile: l.portFile("%i"),
		StateDirectory: l.StateDirName(), Command: s.Command, Port: s.Port,
		Env: s.Env, EnvFile: l.EnvFile(), AccessoriesEnvFile: l.AccessoriesEnvFile(), HoistBin: BinPath, BootRequest: BootRequest(l.App, dest),
	}
	tmpl, err := systemd.Template(a)
	if err != nil {
		return nil, err
	}
	boot, err := systemd.Boot(a)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{systemd.TemplateName(l.App): tmpl, systemd.BootName(l.App): boot}, nil
}

// writeUnits writes the units whose content differs and reloads systemd
// if any did; it reports whether anything changed.
func writeUnits(ctx context.Context, units map[string][]byte) (bool, error) {
	return systemd.WriteUnits(ctx, UnitDir, units)
}

// SetEnv replaces the app's secret environment file, 0600 root, when its
// content differs. Releases read it when they start.
func SetEnv(l Layout, content []byte) (bool, error) {
	return setSecretFile(l, l.EnvFile(), content)
}

// SetAccessoriesEnv replaces the file of the accessories' URLs, as
// SetEnv does the secrets'.
func SetAccessoriesEnv(l Layout, content []byte) (bool, error) {
	return setSecretFile(l, l.AccessoriesEnvFile(), content)
}

func setSecretFile(l Layout, path string, content []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return false, nil
	}
	if err := os.MkdirAll(l.Shared(), 0o700); err != nil {
		return false, fmt.Errorf("set env: %w", err)
	}
	return true, writeFileAtomic(path, content, 0o600)
}

func ensureStateDir(l Layout) error {
	u, err := user.Lookup(l.User())
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(l.StateDir(), 0o750); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := os.Chown(l.StateDir(), uid, gid); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}
