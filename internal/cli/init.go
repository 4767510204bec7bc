package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/platform"
	"github.com/hoistdev/hoist/internal/usererr"
)

type initOptions struct {
	dir   string
	force bool
}

func newInitCmd(s *streams) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented hoist.yml for the app in this directory",
		Long: "init guesses how to build the app (Go from go.mod, Elixir from mix.exs,\n" +
			"Rust from Cargo.toml) and writes hoist.yml with every field explained.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(cmd.Context(), s, o) },
	}
	cmd.Flags().StringVar(&o.dir, "dir", ".", "the app's repository")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite an existing hoist.yml")
	return cmd
}

func runInit(_ context.Context, s *streams, o *initOptions) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	p := config.Detect(dir)
	path := filepath.Join(dir, config.FileName)
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		return usererr.New("%s already exists", path).WithHint("edit it, or pass --force to overwrite it")
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if _, err := f.Write(p.Render()); err != nil {
		f.Close()
		return fmt.Errorf("init: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(s.err, "wrote %s for the %s project %q\nnext:\n", path, p.Kind, p.App)
	for _, sec := range p.Secrets {
		fmt.Fprintf(s.err, "  hoist secrets gen %s\n", sec)
	}
	try := " (or try `hoist lab up`)"
	if !platform.Linux {
		try = "" // the lab needs Linux
	}
	fmt.Fprintf(s.err, "  add your hosts to hoist.yml%s, then `hoist setup` and `hoist deploy`\n", try)
	return nil
}
