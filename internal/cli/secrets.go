package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/secrets"
)

type secretsOptions struct {
	length int
	force  bool
	json   bool
}

func newSecretsCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &secretsOptions{}
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Set, generate, list and remove the app's secrets (encrypted in the repository)",
		Long: "Secrets live in hoist.secrets beside hoist.yml, encrypted with age to a\n" +
			"key kept outside the repository (~/.config/hoist/keys/APP.age, or\n" +
			"HOIST_SECRETS_KEY). A deploy sends them to each host's 0600 environment\n" +
			"file; they never enter the release, the output or the logs.",
	}
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Set a secret: typed on the terminal (not shown), or read from standard input",
		Long: "Set a secret. On a terminal hoist asks for the value and does not show it\n" +
			"as it is typed; otherwise it reads standard input (`pass show x | hoist\n" +
			"secrets set NAME`). A value given after NAME is still taken, with a\n" +
			"warning: other users of this machine see it in ps, and it stays in the\n" +
			"shell's history.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v string
			if len(args) == 2 {
				v = args[1]
				fmt.Fprintf(s.err, "warning: a value on the command line is visible to other users of this machine in `ps` and stays in your shell's history; "+
					"next time run `hoist secrets set %s` and type it, or pipe it in\n", args[0])
			} else {
				var err error
				if v, err = readSecretValue(s, args[0]); err != nil {
					return err
				}
			}
			return runSecretsSet(s, g, args[0], v, true)
		},
	}
	gen := &cobra.Command{
		Use:   "gen NAME",
		Short: "Set a secret to a new random value (64 characters: a Phoenix secret_key_base)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := secrets.Generate(o.length)
			if err != nil {
				return usage("--length: %v", err)
			}
			return runSecretsSet(s, g, args[0], v, o.force)
		},
	}
	gen.Flags().IntVar(&o.length, "length", 64, "characters; 64 for secret_key_base, 8 or more for a signing salt")
	gen.Flags().BoolVar(&o.force, "force", false, "replace an existing value")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the secrets' names (never their values)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runSecretsList(s, g, o) },
	}
	jsonFlag(list, &o.json)
	rm := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove secrets",
		Args:  cobra.MinimumNArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runSecretsRm(s, g, args) },
	}
	cmd.AddCommand(set, gen, list, rm)
	return cmd
}

// readSecretValue reads name's value: asked for on a terminal, without
// echo; else the whole of stdin, up to 1 MiB, without its last newline.
func readSecretValue(s *streams, name string) (string, error) {
	if f, ok := s.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := readHidden(int(f.Fd()), func() { fmt.Fprintf(s.err, "value of %s (not shown): ", name) })
		fmt.Fprintln(s.err)
		if err != nil {
			return "", fmt.Errorf("read value: %w", err)
		}
		if len(b) == 0 {
			return "", usage("no value typed for %s", name)
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(s.in, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read value: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func openSecrets(g *globalOptions) (secrets.Store, map[string]string, error) {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return secrets.Store{}, nil, err
	}
	st := secretsStore(cfg, repo)
	vals, err := st.Load()
	return st, vals, err
}

// runSecretsSet sets name; replace allows overwriting an existing value.
func runSecretsSet(s *streams, g *globalOptions, name, value string, replace bool) error {
	if !secrets.ValidName(name) {
		return usage("%q is not a valid environment variable name", name)
	}
	if err := secrets.CheckValue(name, value); err != nil {
		return err
	}
	st, vals, err := openSecrets(g)
	if err != nil {
		return err
	}
	if _, exists := vals[name]; exists && !replace {
		return usage("%s is already set; pass --force to replace it", name)
	}
	vals[name] = value
	if err := st.Save(vals); err != nil {
		return err
	}
	fmt.Fprintf(s.err, "set %s in %s; deploy to send it to the hosts\n", name, st.Path)
	return nil
}

func runSecretsList(s *streams, g *globalOptions, o *secretsOptions) error {
	_, vals, err := openSecrets(g)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	if o.json {
		return writeJSON(s, names)
	}
	for _, n := range names {
		fmt.Fprintln(s.out, n)
	}
	return nil
}

func runSecretsRm(s *streams, g *globalOptions, names []string) error {
	st, vals, err := openSecrets(g)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, ok := vals[n]; !ok {
			return usage("no secret named %s", n)
		}
		delete(vals, n)
	}
	if err := st.Save(vals); err != nil {
		return err
	}
	fmt.Fprintf(s.err, "removed %s; deploy to remove it from the hosts\n", strings.Join(names, ", "))
	return nil
}
