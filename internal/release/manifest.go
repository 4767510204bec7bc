// Package release is the artifact hoist ships: a release directory packed
// as a zstd-compressed tarball, and the manifest that names and checks it.
package release

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ManifestName is the file the manifest is stored in, inside each
// unpacked release directory on a host. A payload may not contain it.
const ManifestName = ".hoist-release.json"

// Manifest describes one release.
type Manifest struct {
	App     string    `json:"app"`
	ID      string    `json:"id"`
	Commit  string    `json:"commit"`
	Ref     string    `json:"ref,omitempty"`
	SHA256  string    `json:"sha256"` // of the compressed payload
	Size    int64     `json:"size"`   // of the compressed payload, in bytes
	BuiltAt time.Time `json:"built_at"`
	OS      string    `json:"os"`
	Arch    string    `json:"arch"`
	// GLIBC is the newest glibc symbol version the release's binaries
	// need; "" when none links glibc.
	GLIBC string `json:"glibc,omitempty"`
	// Index is the sha256 of the release's Index: what a host checks the
	// list of files against before it checks every file against the list.
	Index string `json:"index,omitempty"`
}

// NewID returns a release id that sorts by build time and names the
// commit: 20261125T014500Z-1a2b3c4d5e6f.
func NewID(t time.Time, commit string) string {
	short := commit
	if len(short) > 12 {
		short = short[:12]
	}
	return t.UTC().Format("20060102T150405Z") + "-" + short
}

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4,40}$`)

// ValidID reports whether id has the form NewID makes. Hosts check it
// before using an id in a path.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Validate checks a manifest read from an untrusted place.
func (m *Manifest) Validate() error {
	switch {
	case !ValidID(m.ID):
		return fmt.Errorf("invalid release id %q", m.ID)
	case m.App == "":
		return fmt.Errorf("manifest of %s has no app", m.ID)
	case len(m.SHA256) != 64 || strings.Trim(m.SHA256, "0123456789abcdef") != "":
		return fmt.Errorf("manifest of %s has an invalid sha256 %q", m.ID, m.SHA256)
	case m.Size <= 0:
		return fmt.Errorf("manifest of %s has an invalid size %d", m.ID, m.Size)
	case m.OS == "" || m.Arch == "":
		return fmt.Errorf("manifest of %s has no target os/arch", m.ID)
	case m.Index != "" && !ValidSum(m.Index):
		return fmt.Errorf("manifest of %s has an invalid index sum %q", m.ID, m.Index)
	}
	return nil
}

// Marshal encodes m as indented JSON.
func (m *Manifest) Marshal() []byte {
	b, _ := json.MarshalIndent(m, "", "  ") // cannot fail: plain struct
	return append(b, '\n')
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
