//go:build lab

package cloudinit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/labtest"
)

// TestSchemaInLabImage validates the rendered user data with the real
// `cloud-init schema` of the lab's bare cloud image (Debian 12's
// cloud-init), not a copy of its schema; and checks that the check
// catches a wrong document, so that its pass means something.
func TestSchemaInLabImage(t *testing.T) {
	labtest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img, err := lab.EnsureCloudImage(ctx, lab.Options{Log: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, err := Render(testData())
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "ssh_pwauth: false", "ssh_pwauth: false\nssh_genkeytypes: []", 1)
	tests := map[string]struct {
		doc   string
		valid bool
	}{
		"rendered":            {string(good), true},
		"empty key type list": {bad, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			file := strings.ReplaceAll(name, " ", "-") + ".yaml"
			if err := os.WriteFile(filepath.Join(dir, file), []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(ctx, "systemd-nspawn", "-q", "-D", img, "--register=no", "--keep-unit", "--as-pid2",
				"--read-only", "--bind-ro="+dir+":/mnt", "cloud-init", "schema", "-c", "/mnt/"+file).CombinedOutput()
			valid := err == nil && strings.Contains(string(out), "Valid cloud-config")
			if valid != tt.valid {
				t.Errorf("cloud-init schema said (valid=%v, want %v):\n%s", valid, tt.valid, out)
			}
		})
	}
}
