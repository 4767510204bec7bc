// Package host is the part of hoist that runs on a deploy target, as
// `hoist host ...` invoked over SSH: it receives and unpacks releases,
// installs units, activates a release behind a health check, rolls back,
// and answers status queries. It never imports the CLI; the client side
// reaches it through Client.
package host

import (
	"os"
	"path/filepath"
	"sort"

	"github.com/hoistdev/hoist/internal/release"
)

// DefaultBase is where app directories live on a host.
const DefaultBase = "/var/lib/hoist"

// BinPath is where setup installs the hoist binary on a host.
const BinPath = "/usr/local/bin/hoist"

// Layout names the paths of one app on a host:
//
//	BASE/APP/releases/ID/     unpacked releases, never changed once in place
//	BASE/APP/current          symlink to releases/ID: the release that serves
//	BASE/APP/uploads/         partial and complete uploads
//	BASE/APP/shared/env       secret environment, 0600 root, read by systemd
//	BASE/APP/deploy.lock      who deploys, since when
type Layout struct {
	App  string
	Root string
}

// For returns the layout of app under base ("" means DefaultBase).
func For(base, app string) Layout {
	if base == "" {
		base = DefaultBase
	}
	return Layout{App: app, Root: filepath.Join(base, app)}
}

func (l Layout) Releases() string         { return filepath.Join(l.Root, "releases") }
func (l Layout) Release(id string) string { return filepath.Join(l.Root, "releases", id) }
func (l Layout) Current() string          { return filepath.Join(l.Root, "current") }
func (l Layout) Uploads() string          { return filepath.Join(l.Root, "uploads") }
func (l Layout) Shared() string           { return filepath.Join(l.Root, "shared") }
func (l Layout) EnvFile() string          { return filepath.Join(l.Root, "shared", "env") }
func (l Layout) LockFile() string         { return filepath.Join(l.Root, "deploy.lock") }

// User is the system user the app runs as.
func (l Layout) User() string { return "hoist-" + l.App }

// CurrentID returns the id of the current release, or "" when none is.
func (l Layout) CurrentID() string {
	target, err := os.Readlink(l.Current())
	if err != nil {
		return ""
	}
	id := filepath.Base(target)
	if !release.ValidID(id) {
		return ""
	}
	return id
}

// ReleaseIDs lists the complete releases on disk, oldest first.
func (l Layout) ReleaseIDs() ([]string, error) {
	entries, err := os.ReadDir(l.Releases())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && release.ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Manifest reads the manifest of an unpacked release.
func (l Layout) Manifest(id string) (*release.Manifest, error) {
	b, err := os.ReadFile(filepath.Join(l.Release(id), release.ManifestName))
	if err != nil {
		return nil, err
	}
	return release.ParseManifest(b)
}
