package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/signkey"
	"github.com/hoistdev/hoist/internal/store"
	"github.com/hoistdev/hoist/internal/usererr"
)

type storeOptions struct {
	json bool
}

func newStoreCmd(s *streams, g *globalOptions) *cobra.Command {
	o := &storeOptions{}
	cmd := &cobra.Command{
		Use:   "store",
		Short: "The release store: its signing key, and the release its record names",
		Long: "With a store section in hoist.yml, deploys put releases in an S3-compatible\n" +
			"bucket and move its current record, signed with a key kept under\n" +
			"~/.config/hoist/keys (APP.store.key); hosts trust records that key\n" +
			"signed, and no other (docs/store.md).",
	}
	key := &cobra.Command{
		Use:   "key",
		Short: "Make the key that signs the store's records (once), and print its public key for store.public_key",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStoreKey(s, g) },
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the release the store's record names, and whether the app's key signed it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStoreStatus(cmd.Context(), s, g, o) },
	}
	jsonFlag(status, &o.json)
	cmd.AddCommand(key, status)
	return cmd
}

func runStoreKey(s *streams, g *globalOptions) error {
	cfg, _, err := loadConfig(g)
	if err != nil {
		return err
	}
	key, from, err := g.storeKey(cfg)
	var ue *usererr.Error
	if err != nil && g.storeKeyFile == "" && os.Getenv(envStoreKey) == "" && errors.As(err, &ue) && !fileExists(from) {
		// None yet: make it.
		var file []byte
		if file, key, err = signkey.GenerateKey("hoist store key of " + cfg.App); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(from), 0o700); err != nil {
			return fmt.Errorf("store key: %w", err)
		}
		if err := atomicfile.Write(from, file, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(s.err, "made the store key of %s at %s: keep it out of the repository (a CI job gets it as $%s)\n", cfg.App, from, envStoreKey)
	} else if err != nil {
		return err
	}
	line, err := signkey.PublicKeyLine(key.Public().(ed25519.PublicKey), "hoist store key of "+cfg.App)
	if err != nil {
		return err
	}
	if cfg.Store.PublicKey == "" {
		fmt.Fprintf(s.err, "put its public key in %s, under store: as public_key:\n", configName(cfg))
	} else if pub, perr := signkey.ParsePublicKey(cfg.Store.PublicKey); perr == nil && !pub.Equal(key.Public()) {
		fmt.Fprintf(s.err, "%s this key is not the one store.public_key names: hosts would refuse what it signs\n", paint(s.err, "warning:", yellow))
	}
	fmt.Fprintln(s.out, line)
	return nil
}

// storeOptions are a deploy's and a rollback's store, nil without one.
// The signing key must be the one hoist.yml says the hosts trust: a
// deploy with another is refused before it puts anything.
func (a *app) storeOptions(g *globalOptions) (*deploy.StoreOptions, error) {
	if !a.Config.Store.On() {
		return nil, nil
	}
	pub, err := deploy.StorePublicKey(a.Config)
	if err != nil {
		return nil, err
	}
	key, from, err := g.storeKey(a.Config)
	if err != nil {
		return nil, err
	}
	if !pub.Equal(key.Public()) {
		have, _ := signkey.Fingerprint(key.Public().(ed25519.PublicKey))
		want, _ := signkey.Fingerprint(pub)
		return nil, usererr.New("the store key of %s (%s) is not the one store.public_key names (%s): the hosts would refuse the records it signs", from, have, want).
			WithHint("sign with the key store.public_key names (--store-key or $%s), or put this key's public half there (hoist store key prints it) and run hoist setup", envStoreKey)
	}
	loc, err := deploy.StoreLocation(a.Config, a.Secrets)
	if err != nil {
		return nil, err
	}
	return &deploy.StoreOptions{Location: loc, Key: key, Destination: a.Config.Destination, By: a.Actor.Login,
		Fetch: a.Config.Deploy.Ship == config.ShipStore}, nil
}

// storeStatus is what `hoist store status` found.
type storeStatus struct {
	Where string `json:"where"`
	// Record is the current record, when there is one.
	Record *store.Record `json:"record,omitempty"`
	// Signer is the fingerprint of the key the record names; Trusted
	// says whether store.public_key's key signed it.
	Signer  string `json:"signer,omitempty"`
	Trusted bool   `json:"trusted"`
	Error   string `json:"error,omitempty"`
}

func runStoreStatus(ctx context.Context, s *streams, g *globalOptions, o *storeOptions) error {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return err
	}
	if !cfg.Store.On() {
		return usererr.New("%s has no store section", configName(cfg)).WithHint("docs/store.md says how to add one")
	}
	pub, err := deploy.StorePublicKey(cfg)
	if err != nil {
		return err
	}
	loc, err := deploy.StoreLocation(cfg, secretsStore(cfg, repo))
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, loc, store.DefaultRetries)
	if err != nil {
		return err
	}
	out := storeStatus{Where: st.Where()}
	raw, _, err := st.Current(ctx)
	if err != nil {
		return err
	}
	var bad error
	if raw != nil {
		var rec *store.Record
		rec, out.Signer, err = store.Parse(raw)
		if err != nil {
			bad = usererr.Wrap(err, "the store's record cannot be read")
		} else {
			out.Record = rec
			if _, verr := store.Verify(pub, raw); verr != nil {
				bad = usererr.Wrap(verr, "the store's record is not trusted").
					WithHint("someone who can write the bucket wrote it; hosts refuse it. A deploy or a rollback replaces it")
			} else {
				out.Trusted = true
			}
		}
	}
	if bad != nil {
		out.Error = bad.Error()
	}
	if o.json {
		if err := writeJSON(s, storeStatusOut(out)); err != nil {
			return err
		}
		return bad
	}
	switch r := out.Record; {
	case r == nil && bad == nil:
		fmt.Fprintf(s.out, "%s: no record yet: nothing was deployed through the store\n", out.Where)
	case r != nil:
		trust := "signed by the app's key"
		if !out.Trusted {
			trust = "NOT signed by the app's key (" + orNoneKey(out.Signer) + ")"
		}
		fmt.Fprintf(s.out, "%s: %s (record %d, %s by %s at %s), %s\n", out.Where, r.Release, r.Seq, r.Op, orSomeoneCLI(r.By), localTime(r.At), trust)
	}
	return bad
}

func orNoneKey(fp string) string {
	if fp == "" {
		return "it names none"
	}
	return "it names " + fp
}

func orSomeoneCLI(by string) string {
	if by == "" {
		return "someone"
	}
	return by
}
