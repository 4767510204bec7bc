//go:build lab && linux

package provision

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/labtest"
)

// TestLabConformance runs the provider conformance suite for lab
// against the lab (lab tier): one host from the bare cloud image, made
// by the provider the registry makes. The lab is named by the app,
// which HOIST_E2E_LAB names (default conform).
func TestLabConformance(t *testing.T) {
	labtest.Need(t)
	app := os.Getenv("HOIST_E2E_LAB")
	if app == "" {
		app = "conform"
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	c, err := config.Parse("hoist.yml", []byte("version: 1\napp: "+app+"\nbuild: {command: make, output: dist}\nrun: {command: ./app, port: 4000}\ninfra: {provider: lab, env: conform}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Lookup(config.ProviderLab)
	testConformance(t, conformance{
		Name: config.ProviderLab,
		Spec: SpecFrom(c),
		New: func(t *testing.T, s Spec) Provider {
			p, err := r.New(context.Background(), s, Env{KnownHosts: known, Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Timeout: 8 * time.Minute,
	})
}
