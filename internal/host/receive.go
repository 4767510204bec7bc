package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hoistdev/hoist/internal/release"
)

// UploadState tells the client where to resume an upload.
type UploadState struct {
	// Have is how many bytes of the payload the host already holds.
	Have int64 `json:"have"`
	// Unpacked is true when the release is already in place; nothing to send.
	Unpacked bool `json:"unpacked"`
}

// Upload reports what the host holds of release m.
func Upload(l Layout, m *release.Manifest) (UploadState, error) {
	if err := checkManifest(l, m); err != nil {
		return UploadState{}, err
	}
	if have, err := l.Manifest(m.ID); err == nil {
		if have.SHA256 != m.SHA256 {
			// Two builds of one commit in the same second (two machines
			// deploying at once) share an id but not their bytes.
			return UploadState{}, fmt.Errorf("release %s is already on this host with other contents (sha256 %.12s, not %.12s): it was built twice; deploy with --rebuild to give this build an id of its own", m.ID, have.SHA256, m.SHA256)
		}
		return UploadState{Unpacked: true}, nil
	}
	fi, err := os.Stat(l.partFile(m.ID))
	if errors.Is(err, os.ErrNotExist) {
		return UploadState{}, nil
	}
	if err != nil {
		return UploadState{}, fmt.Errorf("upload state: %w", err)
	}
	if fi.Size() > m.Size {
		// Cannot be ours: start over.
		os.Remove(l.partFile(m.ID))
		return UploadState{}, nil
	}
	return UploadState{Have: fi.Size()}, nil
}

func checkManifest(l Layout, m *release.Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.App != l.App {
		return fmt.Errorf("release %s is for app %q, not %q", m.ID, m.App, l.App)
	}
	return checkTarget(m, Facts())
}

// checkTarget refuses a release this host cannot run, before a byte of
// it is sent.
func checkTarget(m *release.Manifest, f HostFacts) error {
	if m.OS != f.OS || m.Arch != f.Arch {
		return fmt.Errorf("release %s is built for %s/%s but this host is %s/%s; set build.target to %s/%s",
			m.ID, m.OS, m.Arch, f.OS, f.Arch, f.OS, f.Arch)
	}
	if m.GLIBC != "" && release.CompareVersions(m.GLIBC, f.GLIBC) > 0 {
		if f.GLIBC == "" {
			return fmt.Errorf("release %s needs glibc %s but this host has no glibc; build it statically", m.ID, m.GLIBC)
		}
		return fmt.Errorf("release %s needs glibc %s but this host has %s; build it on a distribution no newer than the host's (builder: rootfs)", m.ID, m.GLIBC, f.GLIBC)
	}
	return nil
}

// Receive appends the payload of m from offset on, read from r, then
// verifies its checksum and unpacks it into releases/ID. The partial file
// survives a killed connection so that the next attempt resumes; an
// unpacked release appears only complete, by one rename.
func Receive(l Layout, m *release.Manifest, offset int64, r io.Reader) error {
	if err := checkManifest(l, m); err != nil {
		return err
	}
	if err := os.MkdirAll(l.Uploads(), 0o700); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	part := l.partFile(m.ID)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if fi.Size() != offset {
		return fmt.Errorf("receive %s: host holds %d bytes, client resumes at %d", m.ID, fi.Size(), offset)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, m.Size-offset))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("receive %s after %d bytes: %w", m.ID, offset+n, err)
	}
	if offset+n != m.Size {
		return fmt.Errorf("receive %s: connection ended after %d of %d bytes; run the deploy again to resume", m.ID, offset+n, m.Size)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return unpackPart(l, m, part)
}

func unpackPart(l Layout, m *release.Manifest, part string) error {
	sum, err := fileSHA256(part)
	if err != nil {
		return fmt.Errorf("verify %s: %w", m.ID, err)
	}
	if sum != m.SHA256 {
		os.Remove(part)
		return fmt.Errorf("release %s arrived corrupted: sha256 %s, expected %s; the upload was discarded", m.ID, sum, m.SHA256)
	}
	if err := os.MkdirAll(l.Releases(), 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	tmp := filepath.Join(l.Releases(), ".tmp-"+m.ID+"-"+randomSuffix())
	defer os.RemoveAll(tmp) // gone after the rename; cleans up on failure
	pf, err := os.Open(part)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer pf.Close()
	if err := release.Unpack(pf, tmp); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, release.ManifestName), m.Marshal(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.Release(m.ID)); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if err := syncDir(l.Releases()); err != nil {
		return err
	}
	return os.Remove(part)
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
