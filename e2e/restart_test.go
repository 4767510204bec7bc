//go:build lab

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/loadtest"
)

// TestEnvChangeReachesTheApp: with requests sent without pause through
// the proxy, a deploy of the same commit after run.env changed, and
// after `hoist setup` added a Redis accessory (REDIS_URL), restarts the
// release that serves so that the app sees the change; `hoist restart`
// does it on purpose; no request fails, and every answer names the
// release (its twin answers as the release). A deploy when nothing
// changed leaves the release running.
func TestEnvChangeReachesTheApp(t *testing.T) {
	hosts := needLab(t)[:1]
	const name = "envy.test"
	a := newApp(t, "envy", 3420, hosts, "proxy:\n  hosts: ["+name+"]\n  drain_timeout: 2s\n")
	a.edit(t, "main.go", `	mux.HandleFunc("GET /up",`, `	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv(r.PathValue("name")))
	})
	mux.HandleFunc("GET /up",`)
	mustHoist(t, a.dir, "setup")
	id := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	env := func(v string) string {
		t.Helper()
		got, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+hosts[0]+"/env/"+v, name)
		if err != nil {
			t.Fatalf("GET /env/%s: %v", v, err)
		}
		return strings.TrimSpace(got)
	}
	tr := startTraffic(t, hosts, viaProxy(name))

	// run.env changed in hoist.yml (not committed: the same release).
	cfg := readFile(t, a.dir+"/hoist.yml")
	a.write(t, "hoist.yml", strings.Replace(cfg, "  port: 3420\n", "  port: 3420\n  env:\n    GREETING: hi\n", 1))
	if got := strings.TrimSpace(mustHoist(t, a.dir, "deploy")); got != id {
		t.Fatalf("deploy of the same commit made %s, want %s reused", got, id)
	}
	if got := env("GREETING"); got != "hi" {
		t.Errorf("after a deploy with a new run.env the app sees GREETING=%q", got)
	}

	// An accessory added by setup: its URL reaches the app at the next deploy.
	cfg = readFile(t, a.dir+"/hoist.yml")
	a.write(t, "hoist.yml", cfg+"accessories:\n  cache:\n    service: redis\n    port: 6391\n")
	mustHoist(t, a.dir, "setup")
	if got := strings.TrimSpace(mustHoist(t, a.dir, "deploy")); got != id {
		t.Fatalf("deploy of the same commit made %s, want %s reused", got, id)
	}
	if got := env("REDIS_URL"); !strings.HasPrefix(got, "redis://") {
		t.Errorf("after setup added Redis and a deploy, the app sees REDIS_URL=%q", got)
	}

	// hoist restart, on purpose; then a deploy with nothing changed.
	var out []struct {
		Host    string `json:"host"`
		OK      bool   `json:"ok"`
		Release string `json:"release"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "restart", "--json")), &out); err != nil || len(out) != 1 || !out[0].OK || out[0].Release != id {
		t.Errorf("restart --json: %+v, %v", out, err)
	}
	since := unitSince(t, hosts[0], "hoist-envy@"+id+".service")
	_, stderr, err := hoist(t.Context(), a.dir, "deploy", "--verbose")
	if err != nil || !strings.Contains(stderr, "goes on serving") {
		t.Errorf("deploy with nothing changed: %v\n%s", err, stderr)
	}
	if again := unitSince(t, hosts[0], "hoist-envy@"+id+".service"); again != since {
		t.Errorf("a deploy with nothing changed restarted the release (active since %s, then %s)", since, again)
	}
	// Traffic after the deploy too.
	loadtest.WaitServed(t, tr.loops, 20, time.Minute)
	tr.finish()
	tr.check(t, 100)
	for rel := range tr.seen() {
		if rel != id {
			t.Errorf("an answer named release %q, want only %s", rel, id)
		}
	}
	if got := unitState(t, hosts[0], "hoist-envy@"+id+"-twin.service"); got == "active" {
		t.Errorf("the twin still runs")
	}
}

// unitSince is when a unit on a lab host last became active.
func unitSince(t *testing.T, addr, unit string) string {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dialLab(t, addr).Run(ctx, "systemctl show -P ActiveEnterTimestampMonotonic "+unit, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}
