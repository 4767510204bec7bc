package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/usererr"
)

type destroyOptions struct {
	yes bool
}

func newDestroyCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &destroyOptions{}
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove everything hoist provision made for this app and environment",
		Long: "destroy finds what hoist made for the app and infra.env by their tags\n" +
			"— nothing else is touched — lists it, asks for the app's name to be\n" +
			"typed (or --yes), removes it, and checks that nothing is left.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDestroy(cmd.Context(), s, g, o) },
	}
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask for the app's name")
	return cmd
}

func runDestroy(ctx context.Context, s *streams, g *globalOptions, o *destroyOptions) error {
	in, err := loadInfra(ctx, g, s, "", false) // the SSH rule does not matter to destroy
	if err != nil {
		return err
	}
	inv, err := in.opts.Provider.Observe(ctx)
	if err != nil {
		return err
	}
	spec := in.opts.Spec
	if len(inv.Resources) == 0 {
		fmt.Fprintf(s.err, "nothing to destroy: hoist made nothing for %s (%s) on %s\n", spec.App, spec.Env, spec.Provider)
		return in.opts.State.Remove()
	}
	fmt.Fprintf(s.err, "destroy removes what hoist made for %s (%s) on %s:\n", spec.App, spec.Env, spec.Provider)
	for _, r := range inv.Resources {
		fmt.Fprintf(s.err, "  - %s %s %s\n", r.Kind, r.Name, r.ID)
	}
	if !o.yes {
		if err := confirm(s, spec.App, "destroy it"); err != nil {
			return err
		}
	}
	// The app's names stop pointing at what is about to go.
	if err := deploy.SyncDNS(ctx, localApp(in.cfg, in.repo), s.err, true); err != nil {
		return err
	}
	gone, err := provision.Destroy(ctx, in.opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "destroyed %d resource(s); nothing of %s (%s) is left\n", len(gone), spec.App, spec.Env)
	return nil
}

// confirm asks for the app's name to be typed before what cannot be
// undone (what: "destroy it"); --yes skips it. With nothing typed (no
// terminal, an empty pipe) it is a usage error that names --yes.
func confirm(s *streams, app, what string) error {
	typed, ok, err := askTyped(s, fmt.Sprintf("type the app's name (%s) to %s: ", app, what), app)
	if ok {
		return nil
	}
	if err != nil && typed == "" {
		return usage("nothing was typed: type the app's name (%s), or pass --yes", app)
	}
	return usererr.New("%q is not %s: nothing was changed", typed, app)
}

// askTyped asks question on stderr and reads a line from stdin: ok when
// it is want.
func askTyped(s *streams, question, want string) (line string, ok bool, err error) {
	fmt.Fprint(s.err, question)
	line, err = bufio.NewReader(s.in).ReadString('\n')
	line = strings.TrimSpace(line)
	return line, line == want, err
}
