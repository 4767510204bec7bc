//go:build lab

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFailedReleasesAreNotReleases: with keep_releases 3, three good
// deploys and two broken ones (one fails its health check, one crashes
// at boot), then two rollbacks: the failed releases are listed as failed,
// never counted or picked, and the second rollback reaches the release
// before last.
func TestFailedReleasesAreNotReleases(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "books", 3120, hosts[:1], "")
	mustHoist(t, a.dir, "setup")
	var good []string
	for range 3 {
		a.change(t)
		good = append(good, strings.TrimSpace(mustHoist(t, a.dir, "deploy")))
	}
	a.edit(t, "main.go", `fmt.Fprintln(w, "ok")`, `w.WriteHeader(500)`)
	failHoist(t, a.dir, "deploy")
	a.edit(t, "main.go", `w.WriteHeader(500)`, `fmt.Fprintln(w, "ok")`)
	a.edit(t, "main.go", `release := os.Getenv("HOIST_RELEASE")`, `release := os.Getenv("HOIST_RELEASE"); if release != "" { os.Exit(3) }`)
	if stderr := failHoist(t, a.dir, "deploy"); !strings.Contains(stderr, "the service exited") {
		t.Errorf("a crash at boot is not named:\n%s", stderr)
	}
	a.wantServed(t, hosts[:1], good[2])

	var out []hostReleases
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "releases", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range out[0].Releases {
		if r.Failed {
			failed++
		}
	}
	if failed != 2 || out[0].current() != good[2] {
		t.Errorf("releases %+v: want 2 failed and %s current", out[0].Releases, good[2])
	}
	if human := mustHoist(t, a.dir, "releases"); strings.Count(human, "failed: ") != 2 {
		t.Errorf("hoist releases does not show the two failures:\n%s", human)
	}

	mustHoist(t, a.dir, "rollback")
	a.wantServed(t, hosts[:1], good[1])
	mustHoist(t, a.dir, "rollback")
	a.wantServed(t, hosts[:1], good[0])
}
