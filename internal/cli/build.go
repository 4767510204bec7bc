package cli

import (
	"context"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/build"
)

type buildOptions struct {
	ref     string
	json    bool
	rebuild bool
}

func newBuildCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a commit into a packed release, without deploying it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runBuild(cmd.Context(), s, g, o) },
	}
	cmd.Flags().StringVar(&o.ref, "ref", "HEAD", "branch, tag or commit to build")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the manifest as JSON")
	cmd.Flags().BoolVar(&o.rebuild, "rebuild", false, "build even if a release of the same source exists")
	return cmd
}

func runBuild(ctx context.Context, s *streams, g *globalOptions, o *buildOptions) error {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return err
	}
	dial, err := dialer(g, cfg, s, &sync.Mutex{})
	if err != nil {
		return err
	}
	art, err := build.Release(ctx, build.Options{Config: cfg, Repo: repo, Ref: o.ref, WorkDir: cacheDir(), Log: s.err, Dial: dial, Rebuild: o.rebuild, Verbose: g.verbose})
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(s, buildResultJSON{Path: art.Path, Manifest: ptrOut(art.Manifest, manifestOut)})
	}
	fmt.Fprintln(s.out, art.Path)
	return nil
}
