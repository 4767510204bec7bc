package hostproto

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hostSide are the packages that run on a host. The protocol and the
// laptop's client must not depend on them, even through another
// package: a change to the host's internals would be a protocol change,
// and the laptop would link host-side code.
var hostSide = []string{"accessory", "proxy", "certs", "store", "host", "systemd", "secrets"}

const module = "github.com/hoistdev/hoist/internal/"

// TestProtocolImportsNoHostSide holds the rule for hostproto and
// hostclient, naming the import chain that breaks it.
func TestProtocolImportsNoHostSide(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`,
		"../hostproto", "../hostclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	for _, root := range []string{module + "hostproto", module + "hostclient"} {
		if _, ok := imports[root]; !ok {
			t.Fatalf("go list did not list %s", root)
		}
		for _, chain := range forbiddenChains(imports, root) {
			t.Errorf("%s depends on host-side code: %s", root, strings.Join(chain, " -> "))
		}
	}
}

// forbiddenChains are the shortest import chains from root to each
// host-side package it reaches (or a package below one, like proxy/headers).
func forbiddenChains(imports map[string][]string, root string) [][]string {
	from := map[string]string{root: ""}
	queue := []string{root}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if isHostSide(p) {
			var chain []string
			for q := p; q != ""; q = from[q] {
				chain = append([]string{strings.TrimPrefix(q, module)}, chain...)
			}
			chains = append(chains, chain)
			continue // the chain to p names it; what p imports is its own affair
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return chains
}

func isHostSide(pkg string) bool {
	rest, ok := strings.CutPrefix(pkg, module)
	if !ok {
		return false
	}
	for _, h := range hostSide {
		if rest == h || strings.HasPrefix(rest, h+"/") {
			return true
		}
	}
	return false
}

// The check itself: a chain through a leaf to a host-side package is
// found and named (shortest first), and a name that only begins like
// one (proxyish) is not mistaken for it.
func TestForbiddenChains(t *testing.T) {
	imports := map[string][]string{
		module + "hostclient": {module + "hostproto", module + "transport", "fmt"},
		module + "hostproto":  {module + "names", module + "leaf"},
		module + "leaf":       {module + "proxy/headers", module + "proxyish"},
		module + "transport":  {module + "host"},
		module + "host":       {module + "systemd"},
	}
	got := forbiddenChains(imports, module+"hostclient")
	want := []string{"hostclient -> transport -> host", "hostclient -> hostproto -> leaf -> proxy/headers"}
	var names []string
	for _, c := range got {
		names = append(names, strings.Join(c, " -> "))
	}
	if strings.Join(names, "; ") != strings.Join(want, "; ") {
		t.Errorf("chains %q, want %q", names, want)
	}
	if c := forbiddenChains(imports, module+"names"); c != nil {
		t.Errorf("names: chains %q, want none", c)
	}
}
