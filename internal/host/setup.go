package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/systemd"
)

// setupHost prepares a host for app: its system user, its directories, its
// units. Running it again changes only what differs.
func setupHost(ctx context.Context, l Layout, s *hostproto.Spec) (hostproto.HostFacts, error) {
	facts, err := RecordFacts(l.Base())
	if err != nil {
		return facts, err
	}
	return facts, setup(ctx, l, s)
}

func setup(ctx context.Context, l Layout, s *hostproto.Spec) error {
	if err := ensureUser(ctx, l.User()); err != nil {
		return err
	}
	if err := restrictApp(l); err != nil {
		return err
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
	if err := ensureCookie(l); err != nil {
		return err
	}
	if err := WriteStoreSpec(l, s.Store); err != nil {
		return err
	}
	if _, err := installUnits(ctx, l, s); err != nil {
		return err
	}
	if _, err := systemd.Systemctl(ctx, "enable", systemd.BootName(l.App)); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := enableStoreSync(ctx, l); err != nil {
		return err
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

// noHome is the home of the system users hoist makes.
const noHome = "/nonexistent"

// ensureUser makes the system user name, with its group, unless hoist
// made it before. One with a home is someone else's (a login user
// named like an app's): an app would run as it, and it may sudo.
func ensureUser(ctx context.Context, name string) error {
	if u, err := user.Lookup(name); err == nil {
		if u.HomeDir != noHome {
			return fmt.Errorf("user %s exists and hoist did not make it (its home is %s): hoist will not run an app or its proxy as a user others may log in as; remove it or rename the app", name, u.HomeDir)
		}
		return nil
	}
	cmd := exec.CommandContext(ctx, "useradd", "--system", "--user-group",
		"--no-create-home", "--home-dir", noHome, "--shell", "/usr/sbin/nologin", name)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("create user %s: %w: %s", name, err, bytes.TrimSpace(errb.Bytes()))
	}
	return nil
}

// installUnits writes the app's units where they differ and reloads
// systemd if any did. It reports whether anything changed.
func installUnits(ctx context.Context, l Layout, s *hostproto.Spec) (bool, error) {
	units, err := appUnits(l, s)
	if err != nil {
		return false, err
	}
	return writeUnits(ctx, units)
}

// appUnits renders the app's units, by file name.
func appUnits(l Layout, s *hostproto.Spec) (map[string][]byte, error) {
	dest, _, err := recordedDestination(l)
	if err != nil {
		return nil, err
	}
	a := systemd.App{
		Name: l.App, User: l.User(), ReleaseDir: l.Release("%i"), PortFile: l.portFile("%i"),
		StateDirectory: l.StateDirName(), Command: s.Command, Port: s.Port,
		Env: s.Env, EnvFile: l.EnvFile(), AccessoriesEnvFile: l.AccessoriesEnvFile(), CookieFile: l.CookieFile(), HoistBin: BinPath, BootRequest: BootRequest(l.App, dest),
	}
	tmpl, err := systemd.Template(a)
	if err != nil {
		return nil, err
	}
	boot, err := systemd.Boot(a)
	if err != nil {
		return nil, err
	}
	units := map[string][]byte{systemd.TemplateName(l.App): tmpl, systemd.BootName(l.App): boot}
	if hasStore(l) {
		if units[systemd.StoreSyncName(l.App)], err = systemd.StoreSync(a); err != nil {
			return nil, err
		}
	}
	return units, nil
}

// hasStore reports whether the app on this host has a release store.
func hasStore(l Layout) bool {
	_, err := os.Stat(l.storeFile())
	return err == nil
}

// enableStoreSync enables the store-sync unit of an app with a store,
// or disables and removes it when the app has none (any more).
func enableStoreSync(ctx context.Context, l Layout) error {
	name := systemd.StoreSyncName(l.App)
	if hasStore(l) {
		if _, err := systemd.Systemctl(ctx, "enable", name); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(UnitDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := systemd.Systemctl(ctx, "disable", name); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	_, err := systemd.RemoveUnits(ctx, UnitDir, name)
	return err
}

// writeUnits writes the units whose content differs and reloads systemd
// if any did; it reports whether anything changed.
func writeUnits(ctx context.Context, units map[string][]byte) (bool, error) {
	return systemd.WriteUnits(ctx, UnitDir, units)
}

// setEnv replaces the app's secret environment file, 0600 root, when its
// content differs. Releases read it when they start.
func setEnv(l Layout, content []byte) (bool, error) {
	return setSecretFile(l, l.EnvFile(), content)
}

// setAccessoriesEnv replaces the file of the accessories' URLs, as
// setEnv does the secrets'.
func setAccessoriesEnv(l Layout, content []byte) (bool, error) {
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

// restrictApp makes the app's directories, and gives them modes that
// keep its releases from every local user but root and the app's: the
// app's directory and releases/ are root's, group hoist-APP, 0750, so
// that another app's user, the proxy's or anyone else's cannot reach a
// release's files, which keep the build's modes (an Erlang release's
// cookie among them), nor the app's bookkeeping. Hard links between
// releases share their files' modes, and need no change. Setup and
// every activation apply it, so that hosts set up by an older hoist
// converge.
func restrictApp(l Layout) error {
	gid, err := appGroup(l)
	if err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
		gid  int
	}{
		{l.Root, 0o750, gid}, {l.Releases(), 0o750, gid}, {l.Uploads(), 0o700, 0}, {l.Shared(), 0o700, 0},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if err := os.Chown(d.path, 0, d.gid); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	return nil
}

// appGroup is the gid of the app's group, hoist-APP, the primary group
// of its user.
func appGroup(l Layout) (int, error) {
	g, err := user.LookupGroup(l.User())
	if err != nil {
		return 0, fmt.Errorf("setup: %w; run hoist setup", err)
	}
	return strconv.Atoi(g.Gid)
}

// ensureCookie gives the app an Erlang cookie of its own on this host,
// once: an OTP release's node takes RELEASE_COOKIE from the environment
// over the build's releases/COOKIE, which every release of the app, and
// any build of the same source, shares. A secret of the same name wins
// (nodes on several hosts need one cookie). A cookie beginning with
// "-", which an older hoist could make, is replaced: a node takes it for
// a flag, so none ever started with it.
func ensureCookie(l Layout) error {
	env, err := readEnvFile(l.CookieFile())
	if err != nil {
		return err
	}
	if len(env) > 0 && !strings.HasPrefix(env[0], cookieVar+"=-") {
		return nil
	}
	cookie, err := secrets.Generate(cookieLength)
	if err != nil {
		return fmt.Errorf("make the app's cookie: %w", err)
	}
	if err := os.MkdirAll(l.Shared(), 0o700); err != nil {
		return fmt.Errorf("make the app's cookie: %w", err)
	}
	return writeFileAtomic(l.CookieFile(), []byte(cookieVar+"="+cookie+"\n"), 0o600)
}

const (
	cookieVar    = hostproto.CookieVar
	cookieLength = 64
)

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
