package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Source is a commit checked out in a scratch directory.
type Source struct {
	Dir    string
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

// Prefix returns the path of dir inside its repository ("" at the top),
// so that an app in a subdirectory of a monorepo builds there.
func Prefix(ctx context.Context, dir string) (string, error) {
	return git(ctx, dir, "rev-parse", "--show-prefix")
}

// TreeHash returns the git tree hash of dir (relative to the repository
// top, "" for all of it) at commit: it changes exactly when a file under
// it does.
func TreeHash(ctx context.Context, repo, commit, dir string) (string, error) {
	return git(ctx, repo, "rev-parse", "--verify", "--quiet", commit+":"+strings.TrimSuffix(dir, "/"))
}

// Dirty lists the paths with uncommitted changes in repo's working tree;
// they are not part of the build.
func Dirty(ctx context.Context, repo string) ([]string, error) {
	out, err := git(ctx, repo, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 3 {
			paths = append(paths, line[3:])
		}
	}
	return paths, nil
}

// Checkout makes a clean copy of commit from repo in dir, which must not
// exist. It shares the repository's objects instead of copying them, and
// never touches the working copy or its index.
func Checkout(ctx context.Context, repo, commit, ref, dir string) (*Source, error) {
	if _, err := git(ctx, "", "clone", "--quiet", "--shared", "--no-checkout", repo, dir); err != nil {
		return nil, fmt.Errorf("checkout: %w", err)
	}
	if _, err := git(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("checkout %s: %w", commit, err)
	}
	// Submodules come along when the repository has them.
	if _, err := os.Stat(dir + "/.gitmodules"); err == nil {
		if _, err := git(ctx, dir, "submodule", "update", "--init", "--recursive", "--quiet"); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("checkout submodules: %w", err)
		}
	}
	return &Source{Dir: dir, Commit: commit, Ref: ref}, nil
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
