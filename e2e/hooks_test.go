//go:build lab

package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestHooks runs a before_switch and an after_switch hook in the new
// release with its environment, then shows that a failing before_switch
// hook stops the deploy with the previous release serving.
func TestHooks(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "hooks", 3109, hosts[:1], `hooks:
  before_switch: echo "migrated to $HOIST_RELEASE as $(id -un) in $(pwd)" >> "$STATE_DIRECTORY/migrations"
  after_switch: echo "switched $HOIST_RELEASE" >> "$STATE_DIRECTORY/after"
  timeout: 30s
`)
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts[:1], r1)
	conn := dialLab(t, hosts[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := conn.Run(ctx, "cat /var/lib/hoist-hooks/migrations /var/lib/hoist-hooks/after", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	want := "migrated to " + r1 + " as hoist-hooks in /var/lib/hoist/hooks/releases/" + r1 + "\nswitched " + r1 + "\n"
	if out.String() != want {
		t.Errorf("hooks wrote %q, want %q", out.String(), want)
	}

	a.edit(t, "hoist.yml", `  before_switch: echo "migrated`, `  before_switch: echo migration failed >&2; exit 3; echo "migrated`)
	stderr := failHoist(t, a.dir, "deploy")
	for _, w := range []string{"before_switch hook failed with exit status 3", "migration failed"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr)
		}
	}
	a.wantServed(t, hosts[:1], r1)
	if st := status(t, a)[0]; st.Status.Current != r1 {
		t.Errorf("current is %q after a failed hook, want %s", st.Status.Current, r1)
	}
}
