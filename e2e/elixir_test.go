//go:build lab

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestElixirReleasesSideBySide deploys the Elixir example behind the
// proxy through several deploys and a rollback while a client sends
// requests without pause. Each new OTP release starts beside the old one
// as a node of its own, no request fails, and after every step `hoist
// exec -- bin/hello_elixir rpc` reaches the node of the current release.
func TestElixirReleasesSideBySide(t *testing.T) {
	hosts := needLab(t)[:1]
	const name = "elixir.test"
	a := newElixirApp(t, "elixir-side", 4010, hosts, elixirRootfs, "proxy:\n  hosts: ["+name+"]\n  drain_timeout: 2s\n")
	ids := []string{strings.TrimSpace(mustHoist(t, a.dir, "deploy"))}
	tr := startTraffic(t, hosts, viaProxy(name))
	rpcReaches := func(step, id string) {
		t.Helper()
		if got := mustHoist(t, a.dir, "exec", "--", "bin/hello_elixir", "rpc", "IO.puts(:ok)"); got != "ok\n" {
			t.Errorf("after %s, rpc printed %q, want ok", step, got)
		}
		if got := mustHoist(t, a.dir, "exec", "--", "bin/hello_elixir", "rpc", `IO.puts(System.get_env("HOIST_RELEASE"))`); got != id+"\n" {
			t.Errorf("after %s, rpc reached the node of release %q, want %s", step, strings.TrimSpace(got), id)
		}
	}
	rpcReaches("the first deploy", ids[0])
	for i := 1; i <= 3; i++ {
		a.write(t, "CHANGES", fmt.Sprintf("change %d\n", i))
		a.commit(t, fmt.Sprintf("change %d", i))
		ids = append(ids, strings.TrimSpace(mustHoist(t, a.dir, "deploy")))
		rpcReaches(fmt.Sprintf("deploy %d", i), ids[i])
	}
	mustHoist(t, a.dir, "rollback")
	back := ids[len(ids)-2]
	rpcReaches("the rollback", back)
	tr.finish()

	tr.check(t, 50)
	for _, id := range ids[1:] {
		if tr.answers(id) == 0 {
			t.Errorf("release %s never answered through the proxy", id)
		}
	}
	if got, err := get(http.DefaultClient, "http://"+hosts[0]+"/", name); err != nil || strings.TrimSpace(got) != "hello from release "+back {
		t.Errorf("after the rollback the proxy answers %q, %v; want release %s", got, err, back)
	}
}
