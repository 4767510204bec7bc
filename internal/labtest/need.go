package labtest

import (
	"os"
	"testing"

	"github.com/hoistdev/hoist/internal/lab"
)

// Need skips the test where this machine cannot run a lab, and fails it
// under CI, where the lab must run.
func Need(t testing.TB) {
	t.Helper()
	if err := lab.Preflight(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab cannot run under CI: %v", err)
		}
		t.Skipf("lab cannot run here: %v", err)
	}
}
