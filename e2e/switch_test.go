//go:build lab

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// TestProxyTurnedOnForDeployedApp deploys an app without the proxy, then
// puts the proxy in front of it: the first proxied deploy starts the new
// release beside the old one, which still holds run.port, switches the
// proxy to it and stops the old one. A client that asks the app directly
// until the proxy has its route, and the proxy from then on, sees no
// request fail.
func TestProxyTurnedOnForDeployedApp(t *testing.T) {
	hosts := needLab(t)[:1]
	const name, port = "proxyon.test", 3210
	a := newApp(t, "proxyon", port, hosts, "")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	a.wantServed(t, hosts, r1)

	a.writeConfig(t, hosts, "proxy:\n  hosts: ["+name+"]\n  drain_timeout: 2s\n")
	a.commit(t, "behind the proxy")
	mustHoist(t, a.dir, "setup")
	var routed atomic.Bool
	tr := startTraffic(t, hosts, func(c *http.Client, addr string) (string, error) {
		body, err := get(c, "http://"+addr+"/", name)
		var se *statusError
		if err == nil || routed.Load() || !errors.As(err, &se) || se.Code != http.StatusNotFound {
			routed.Store(routed.Load() || err == nil)
			return body, err
		}
		// No route yet: the app itself answers.
		return get(c, fmt.Sprintf("http://%s:%d/", addr, port), "")
	})
	a.change(t)
	r2 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	// A moment of traffic after the switch, through the proxy only.
	n := tr.answers(r2)
	waittest.Within(t, 30*time.Second, "20 answers from "+r2+" after the switch", func() bool { return tr.answers(r2) >= n+20 })
	tr.finish()

	tr.check(t, 50)
	if !routed.Load() {
		t.Error("the proxy never answered for the app")
	}
	if tr.answers(r2) == 0 {
		t.Errorf("release %s never answered", r2)
	}
	if got, err := get(http.DefaultClient, "http://"+hosts[0]+"/", name); err != nil || strings.TrimSpace(got) != "hello from release "+r2 {
		t.Errorf("the proxy answers %q, %v; want release %s", got, err, r2)
	}
	if got := unitState(t, hosts[0], "hoist-proxyon@"+r1+".service"); got != "inactive" {
		t.Errorf("the old release %s is %s, want inactive", r1, got)
	}
}

// unitState returns a unit's ActiveState on a lab host.
func unitState(t *testing.T, addr, unit string) string {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dialLab(t, addr).Run(ctx, "systemctl show -P ActiveState "+unit, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}
