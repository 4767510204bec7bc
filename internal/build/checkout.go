package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Source is a commit checked out in a scratch directory.
type Source struct {
	// Dir is the checkout's top; AppDir the app's directory in it.
	Dir    string
	AppDir string
	Commit string // full hash
	Ref    string // as the user named it
}

// Resolve returns the full commit hash that ref names in repo.
func Resolve(ctx context.Context, repo, ref string) (string, error) {
	out, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		if _, terr := git(ctx, repo, "rev-parse", "--git-dir"); terr != nil {
			return "", usererr.New("%s is not in a git repository", repo).
				WithHint("hoist builds from a commit: run `git init` and commit the app first")
		}
		return "", usererr.New("%q does not name a commit in %s", ref, repo).
			WithHint("pass a branch, tag or commit with --ref")
	}
	return out, nil
}

// Checkout makes a clean copy of what the build sees of commit (the
// scope's directories, sparse) in dir, which must not exist. It shares
// the repository's objects instead of copying them, and never touches
// the working copy or its index. Submodules inside the scope are checked
// out too, from the working copy's own clones of them where it has them.
func Checkout(ctx context.Context, s Scope, commit, ref, dir string) (*Source, error) {
	if _, err := git(ctx, "", "clone", "--quiet", "--shared", "--no-checkout", s.Top, dir); err != nil {
		return nil, fmt.Errorf("checkout: %w", err)
	}
	fail := func(what string, err error) (*Source, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if s.Dirs != nil {
		args := append([]string{"sparse-checkout", "set", "--cone", "--"}, s.Dirs...)
		if _, err := git(ctx, dir, args...); err != nil {
			return fail("checkout", err)
		}
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
		return fail("checkout "+commit, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".gitmodules")); err == nil {
		if err := checkoutSubmodules(ctx, s, dir); err != nil {
			return fail("checkout submodules", err)
		}
	}
	return &Source{Dir: dir, AppDir: filepath.Join(dir, filepath.FromSlash(s.App)), Commit: commit, Ref: ref}, nil
}

// checkoutSubmodules checks out the submodules the scope holds. Each is
// cloned from the working copy's own clone of it (.git/modules/NAME)
// when there is one, so that a build needs no network for what is
// already on this machine; else from its configured URL.
func checkoutSubmodules(ctx context.Context, s Scope, dir string) error {
	pathspec := append([]string{"--"}, s.Dirs...)
	if s.Dirs == nil {
		pathspec = nil
	}
	if _, err := git(ctx, dir, append([]string{"submodule", "init"}, pathspec...)...); err != nil {
		return err
	}
	names, err := git(ctx, dir, "config", "--file", ".gitmodules", "--name-only", "--get-regexp", `^submodule\..*\.path$`)
	if err != nil {
		return err
	}
	gitDir, err := git(ctx, s.Top, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return err
	}
	for key := range strings.SplitSeq(names, "\n") {
		name := strings.TrimSuffix(strings.TrimPrefix(key, "submodule."), ".path")
		local := filepath.Join(gitDir, "modules", name)
		if _, err := os.Stat(local); err == nil {
			if _, err := git(ctx, dir, "config", "submodule."+name+".url", local); err != nil {
				return err
			}
		}
	}
	// Local clones are file transport, which git refuses for submodules
	// unless allowed.
	args := append([]string{"-c", "protocol.file.allow=always", "submodule", "update", "--recursive", "--quiet"}, pathspec...)
	_, err = git(ctx, dir, args...)
	return err
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimRight(out.String(), "\n"), nil
}
