// Package hostbin finds the hoist each host runs and puts it there.
// hoist setup installs hoist on every host, for the host's own platform
// (linux/amd64 or linux/arm64) whatever the operator runs: this binary
// when it is of the host's platform, a binary given with --hoist-binary,
// the host binaries a release archive carries beside the operator's
// (lib/hoist/hoist-linux-ARCH with SHA256SUMS), or one built with Go
// from this hoist's module version. Each binary travels compressed,
// once through the operator's uplink: the first host that has it passes
// it on to the others. Every host checks the sha256 of what it received
// against the sum the operator names (the archive's SHA256SUMS where
// there is one) before it replaces its own hoist with a rename.
package hostbin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Platforms are those hoist sets up hosts of.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// Module is hoist's module path, for go install and messages.
const Module = "github.com/hoistdev/hoist"

// FileName is the name of the host binary for platform in a directory
// of them: hoist-linux-arm64.
func FileName(platform string) string { return "hoist-" + strings.ReplaceAll(platform, "/", "-") }

// SumsFile lists the sha256 of the binaries beside it, as sha256sum
// prints them; BuildFile says which build of hoist they are, as
// ReleaseIdentity writes it (scripts/release.sh).
const (
	SumsFile  = "SHA256SUMS"
	BuildFile = "BUILD"
)

// ReleaseIdentity is the identity of a release build: its version and
// the commit it was built from.
func ReleaseIdentity(version, commit string) string {
	return "version " + version + ", commit " + commit
}

// dirIdentity is what a directory's BuildFile says.
func dirIdentity(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, BuildFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Binary is a hoist for one platform.
type Binary struct {
	Platform string
	Path     string
	// SHA256 is the sum the binary must have: its published one (from
	// SHA256SUMS or PATH.sha256) where there is one, else what this
	// machine read. Hosts check what they receive against it.
	SHA256 string
	// From says where it was found, for people.
	From string
}

// Finder finds the host binary of each platform.
type Finder struct {
	// Self is this hoist's own binary and platform (GOOS/GOARCH).
	Self, SelfPlatform string
	// Given are binaries named by the operator (--hoist-binary), of any
	// platforms: each is taken for the platform its ELF header names.
	Given []string
	// Dirs hold host binaries named FileName(platform), with SHA256SUMS;
	// one is taken only if it is this hoist's build (Identity).
	Dirs []string
	// BuildDir, when set, is where binaries built with Go are kept, one
	// per module version and platform.
	BuildDir string
	// Build makes the binary for platform at out; nil when Go or this
	// hoist's module version is not at hand (GoBuilder).
	Build func(ctx context.Context, platform, out string) error
	// SelfIdentity is which build this hoist is, when it knows (a
	// release build: its version and commit, as BuildFile writes them);
	// "" reads it from Self with Identity.
	SelfIdentity string
	// Identity is what build a binary is (default: FileIdentity); a host
	// binary from Dirs must be the same build as Self. A directory with a
	// BuildFile says it for all its binaries: a release build's own
	// information omits its -ldflags.
	Identity func(path string) (string, error)
	// Log gets notes for people (a directory's binary that is skipped).
	Log io.Writer

	mu    sync.Mutex
	found map[string]result
}

type result struct {
	b   *Binary
	err error
}

// Find returns the binary for platform, looking once per platform.
func (f *Finder) Find(ctx context.Context, platform string) (*Binary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.found[platform]; ok {
		return r.b, r.err
	}
	b, err := f.find(ctx, platform)
	if f.found == nil {
		f.found = map[string]result{}
	}
	f.found[platform] = result{b, err}
	return b, err
}

func (f *Finder) find(ctx context.Context, platform string) (*Binary, error) {
	for _, p := range f.Given {
		plat, err := PlatformOf(p)
		if err != nil {
			return nil, usererr.Wrap(err, "--hoist-binary %s", p)
		}
		if plat == platform {
			return withSum(&Binary{Platform: plat, Path: p, From: "--hoist-binary"}, filepath.Dir(p), filepath.Base(p))
		}
	}
	if platform == f.SelfPlatform && f.Self != "" {
		return withSum(&Binary{Platform: platform, Path: f.Self, From: "this hoist"}, "", "")
	}
	if b := f.fromDirs(platform); b != nil {
		return b, nil
	}
	if b, err := f.build(ctx, platform); b != nil || err != nil {
		return b, err
	}
	return nil, f.missing(platform)
}

// fromDirs is the binary for platform in the first of Dirs that has this
// hoist's build of it.
func (f *Finder) fromDirs(platform string) *Binary {
	self := f.selfIdentity()
	for _, dir := range f.Dirs {
		p := filepath.Join(dir, FileName(platform))
		if _, err := os.Stat(p); err != nil {
			continue
		}
		id, err := dirIdentity(dir)
		if errors.Is(err, os.ErrNotExist) {
			id, err = f.identity(p)
		}
		switch {
		case self == "":
			f.logf("note: %s not used: this hoist does not know which build it is (no version, no VCS stamp)\n", p)
			continue
		case err != nil || id != self:
			f.logf("note: %s is not this hoist's build (%s, not %s); not used\n", p, orUnknown(id, err), self)
			continue
		}
		b, err := withSum(&Binary{Platform: platform, Path: p, From: dir}, dir, FileName(platform))
		if err != nil {
			f.logf("note: %v; not used\n", err)
			continue
		}
		return b
	}
	return nil
}

// build makes the binary with Go, or finds the one made before.
func (f *Finder) build(ctx context.Context, platform string) (*Binary, error) {
	if f.Build == nil || f.BuildDir == "" {
		return nil, nil
	}
	id := f.selfIdentity()
	key := sha256.Sum256([]byte(id))
	out := filepath.Join(f.BuildDir, hex.EncodeToString(key[:8]), FileName(platform))
	if _, err := os.Stat(out); err != nil {
		f.logf("building hoist for %s with Go (once)\n", platform)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return nil, fmt.Errorf("build hoist for %s: %w", platform, err)
		}
		if err := f.Build(ctx, platform, out); err != nil {
			return nil, usererr.Wrap(err, "cannot build hoist for %s with Go", platform).WithHint("%s", fetchHint(platform))
		}
	}
	return withSum(&Binary{Platform: platform, Path: out, From: "built with Go"}, "", "")
}

func (f *Finder) missing(platform string) error {
	return usererr.New("no hoist for %s here: this hoist is for %s, and no host binary for %s is beside it", platform, f.SelfPlatform, platform).
		WithHint("%s", fetchHint(platform))
}

func fetchHint(platform string) string {
	return fmt.Sprintf("unpack the release archive of this hoist's version for your machine (it carries lib/hoist/%s beside bin/hoist), "+
		"or download hoist_VERSION_%s.tar.gz and pass its bin/hoist with --hoist-binary, or install Go so that hoist builds it (%s/cmd/hoist at this version)",
		FileName(platform), strings.ReplaceAll(platform, "/", "_"), Module)
}

// Available lists, for hoist --version, the platforms this hoist can set
// up without building, each with where its binary is; and whether it
// can build the others with Go.
func (f *Finder) Available() (have map[string]string, canBuild bool) {
	have = map[string]string{}
	for _, p := range Platforms {
		switch {
		case p == f.SelfPlatform && f.Self != "":
			have[p] = "this binary"
		default:
			if b := f.fromDirs(p); b != nil {
				have[p] = b.Path
			}
		}
	}
	return have, f.Build != nil
}

func (f *Finder) identity(p string) (string, error) {
	if f.Identity != nil {
		return f.Identity(p)
	}
	return FileIdentity(p)
}

func (f *Finder) selfIdentity() string {
	if f.SelfIdentity != "" {
		return f.SelfIdentity
	}
	if f.Self == "" {
		return ""
	}
	id, _ := f.identity(f.Self)
	return id
}

func (f *Finder) logf(format string, args ...any) {
	if f.Log != nil {
		fmt.Fprintf(f.Log, format, args...)
	}
}

func orUnknown(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	if s == "" {
		return "an unknown build"
	}
	return s
}

// withSum sets b's sum: the one published for name in dir's SHA256SUMS
// or in PATH.sha256, else the file's own.
func withSum(b *Binary, dir, name string) (*Binary, error) {
	want, err := publishedSum(b.Path, dir, name)
	if err != nil {
		return nil, err
	}
	if want == "" {
		if want, err = FileSum(b.Path); err != nil {
			return nil, err
		}
	}
	b.SHA256 = want
	return b, nil
}

// publishedSum is the sum a release published for the file: "" when
// none is beside it.
func publishedSum(path, dir, name string) (string, error) {
	if b, err := os.ReadFile(path + ".sha256"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 && validSum(f[0]) {
			return f[0], nil
		}
		return "", usererr.New("%s.sha256 holds no sha256", path)
	}
	if dir == "" {
		return "", nil
	}
	sums, err := ReadSums(filepath.Join(dir, SumsFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return sums[name], nil
}

// ReadSums reads a SHA256SUMS file: name to sum.
func ReadSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimSpace(name), "*") // sha256sum's binary mode
		if !ok || !validSum(sum) || name == "" {
			return nil, usererr.New("%s:%d is not a sha256sum line", path, n)
		}
		sums[filepath.Base(name)] = sum
	}
	return sums, sc.Err()
}

func validSum(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// FileSum is the sha256 of a file, in hex.
func FileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var elfArch = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64"}

// PlatformOf reads the platform a binary is for from its ELF header;
// a binary that is not ELF is for no host hoist sets up.
func PlatformOf(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux binary: %w", path, err)
	}
	defer f.Close()
	arch := elfArch[f.Machine]
	if arch == "" || (f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX) {
		return "", fmt.Errorf("%s is for %s %s, not a platform hoist sets up", path, f.OSABI, f.Machine)
	}
	return "linux/" + arch, nil
}

// FileIdentity is which build of hoist the binary at path is: its module
// version, VCS revision and the version set with -ldflags, read from the
// build information Go puts in every binary, whatever its platform.
func FileIdentity(path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Go binary: %w", path, err)
	}
	return Identity(bi), nil
}

// Identity is FileIdentity of build information; "" when it says
// nothing of the build (a binary built outside version control, without
// a version).
func Identity(bi *debug.BuildInfo) string {
	var parts []string
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		parts = append(parts, v)
	}
	var rev, modified, ldCommit string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "-ldflags":
			if v := ldflagsVar(s.Value, versionVar); v != "" {
				parts = append(parts, "version "+v)
			}
			ldCommit = ldflagsVar(s.Value, commitVar)
		}
	}
	if rev == "" {
		rev = ldCommit
	}
	if rev != "" {
		if modified == "true" {
			rev += "+dirty"
		}
		parts = append(parts, "commit "+rev)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// The variables the release script sets with -X.
const (
	versionVar = Module + "/internal/cli.Version="
	commitVar  = Module + "/internal/cli.Commit="
)

// ldflagsVar is the value -ldflags gives variable v with -X, or "".
func ldflagsVar(ldflags, v string) string {
	i := strings.Index(ldflags, v)
	if i < 0 {
		return ""
	}
	v = ldflags[i+len(v):]
	if j := strings.IndexAny(v, " '\""); j >= 0 {
		v = v[:j]
	}
	return v
}
