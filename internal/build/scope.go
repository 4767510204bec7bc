package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Scope is what one app's build sees of its repository: the app's
// directory, the directories hoist.yml's build.include adds, and — as
// git's cone-mode sparse checkout has it — the files directly inside each
// directory above them (a monorepo's top-level go.mod, package.json).
// The clean checkout holds exactly that, so a release can be reused for
// any commit that left it unchanged.
type Scope struct {
	// Top is the repository's top directory on this machine.
	Top string
	// App is the app's directory relative to Top, slash-separated; ""
	// when hoist.yml is at the top.
	App string
	// Dirs are App and the included directories, relative to Top,
	// sorted; nil when the build sees the whole repository.
	Dirs []string
}

// Locate finds the repository that holds appDir and the directories the
// build sees; include are build.include's paths, relative to appDir.
func Locate(ctx context.Context, appDir string, include []string) (Scope, error) {
	top, err := git(ctx, appDir, "rev-parse", "--show-toplevel")
	if err != nil {
		return Scope{}, usererr.New("%s is not in a git repository", appDir).
			WithHint("hoist builds from a commit: run `git init` and commit the app first")
	}
	prefix, err := git(ctx, appDir, "rev-parse", "--show-prefix")
	if err != nil {
		return Scope{}, err
	}
	s := Scope{Top: top, App: strings.TrimSuffix(prefix, "/")}
	if s.App == "" {
		return s, nil // the whole repository is the app's
	}
	dirs := []string{s.App}
	for _, inc := range include {
		p := path.Clean(path.Join(s.App, filepath.ToSlash(inc)))
		if p == "." {
			return s, nil // the build asked for everything
		}
		if strings.HasPrefix(p, "../") || p == ".." || path.IsAbs(filepath.ToSlash(inc)) {
			return Scope{}, usererr.New("build.include %q is outside the repository %s", inc, top).
				WithHint("include directories of the repository, relative to hoist.yml's directory")
		}
		dirs = append(dirs, p)
	}
	slices.Sort(dirs)
	s.Dirs = slices.Compact(dirs)
	return s, nil
}

// Describe names what the build sees, for messages: "examples/hello and
// shared/lib".
func (s Scope) Describe() string {
	if s.Dirs == nil {
		return "the repository"
	}
	if len(s.Dirs) == 1 {
		return s.Dirs[0]
	}
	return strings.Join(s.Dirs[:len(s.Dirs)-1], ", ") + " and " + s.Dirs[len(s.Dirs)-1]
}

// Key is a hash of everything the build sees at commit: the trees of its
// directories and the files above them. It changes exactly when
// something the build can see does.
func (s Scope) Key(ctx context.Context, commit string) (string, error) {
	h := sha256.New()
	if s.Dirs == nil {
		tree, err := git(ctx, s.Top, "rev-parse", "--verify", "--quiet", commit+"^{tree}")
		if err != nil {
			return "", fmt.Errorf("source key: %w", err)
		}
		fmt.Fprintf(h, "tree %s\n", tree)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	for _, d := range s.Dirs {
		obj, err := git(ctx, s.Top, "cat-file", "-t", commit+":"+d)
		if err != nil {
			return "", usererr.New("%s is not in commit %s", d, commit[:12]).
				WithHint("commit it, or correct build.include in hoist.yml")
		}
		if obj != "tree" {
			return "", usererr.New("build.include names %s, a file", d).
				WithHint("include its directory; files at the top of the repository and beside the app's directory are always seen")
		}
		tree, err := git(ctx, s.Top, "rev-parse", "--verify", "--quiet", commit+":"+d)
		if err != nil {
			return "", fmt.Errorf("source key: %w", err)
		}
		fmt.Fprintf(h, "tree %s %s\n", d, tree)
	}
	for _, a := range s.ancestors() {
		// The files (not subdirectories) directly in each directory above.
		out, err := git(ctx, s.Top, "ls-tree", commit+":"+a)
		if err != nil {
			return "", fmt.Errorf("source key: %w", err)
		}
		for line := range strings.SplitSeq(out, "\n") {
			if strings.Contains(line, " blob ") {
				fmt.Fprintf(h, "above %s\n", line)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ancestors are the directories above Dirs, each once; "" is the top.
func (s Scope) ancestors() []string {
	set := map[string]bool{"": true}
	for _, d := range s.Dirs {
		for p := path.Dir(d); p != "."; p = path.Dir(p) {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Contains reports whether the build sees the file at rel (relative to
// Top, slash-separated).
func (s Scope) Contains(rel string) bool {
	if s.Dirs == nil {
		return true
	}
	for _, d := range s.Dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	dir := path.Dir(rel)
	if dir == "." {
		dir = "" // a file at the top
	}
	return slices.Contains(s.ancestors(), dir)
}

// sees reports whether the build sees a path git status named: a file,
// or an untracked directory (with a trailing slash) that holds or lies in
// one of Dirs.
func (s Scope) sees(p string) bool {
	dir, isDir := strings.CutSuffix(p, "/")
	if !isDir || s.Dirs == nil {
		return s.Contains(p)
	}
	for _, d := range s.Dirs {
		if d == dir || strings.HasPrefix(d, dir+"/") || strings.HasPrefix(dir, d+"/") {
			return true
		}
	}
	return false
}

// Dirty lists the uncommitted changes in the working copy, split into
// those the build would see and the others (another app's concern).
func (s Scope) Dirty(ctx context.Context) (mine, others []string, err error) {
	out, err := git(ctx, s.Top, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return nil, nil, err
	}
	for line := range strings.SplitSeq(out, "\n") {
		if len(line) <= 3 {
			continue
		}
		p := line[3:]
		if _, to, ok := strings.Cut(p, " -> "); ok {
			p = to // a rename: the new name counts
		}
		p = strings.Trim(p, `"`)
		if s.sees(p) {
			mine = append(mine, p)
		} else {
			others = append(others, p)
		}
	}
	return mine, others, nil
}
