//go:build lab

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/hostbin"
)

// workflow is what the test reads of docs/ci.md's GitHub Actions
// example.
type workflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Steps []struct {
			Name string `yaml:"name"`
			Run  string `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// ciWorkflow is docs/ci.md's GitHub Actions workflow.
func ciWorkflow(t *testing.T) workflow {
	t.Helper()
	b, err := os.ReadFile("../docs/ci.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## GitHub Actions.*?```yaml\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/ci.md has no GitHub Actions workflow")
	}
	var w workflow
	if err := yaml.Unmarshal(m[1], &w); err != nil {
		t.Fatalf("docs/ci.md's workflow: %v", err)
	}
	return w
}

// step is the script of a job's step, by the step's name.
func (w workflow) step(t *testing.T, job, name string) string {
	t.Helper()
	for _, s := range w.Jobs[job].Steps {
		if s.Name == name {
			return s.Run
		}
	}
	t.Fatalf("docs/ci.md: job %s has no step %q", job, name)
	return ""
}

// TestDeployFromCI runs docs/ci.md's GitHub Actions workflow, its
// deploy job twice and its rollback job, against a lab host, as a
// runner would: a home with nothing in it (no ~/.ssh, no hoist home),
// no ssh-agent, stdin not a terminal, and the SSH key, the host's key
// and the secrets key in the variables the workflow sets from its
// secrets. The install step downloads, checks and unpacks the release
// archive scripts/release.sh made of the version the workflow names,
// from a server on loopback in the release page's stead, and the jobs
// run the hoist it installed. Results come back as JSON, stderr is
// plain lines, the app gets its secret, and a host whose key is not
// pinned is refused with nothing recorded.
func TestDeployFromCI(t *testing.T) {
	hosts := needLab(t)
	h := hosts[1]
	w := ciWorkflow(t)
	a := newApp(t, "ciapp", 3471, []string{h}, "")
	mustHoist(t, a.dir, "secrets", "gen", "SECRET_KEY_BASE")
	a.git(t, "add", "hoist.secrets")
	a.commit(t, "secrets")

	// What the repository's secrets hold: the files a person has.
	home := filepath.Join(work, "home")
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var pinned []string
	for _, line := range strings.Split(read(filepath.Join(home, "known_hosts")), "\n") {
		if strings.HasPrefix(line, h+" ") {
			pinned = append(pinned, line)
		}
	}
	if len(pinned) == 0 {
		t.Fatalf("no known_hosts line for %s", h)
	}
	secrets := map[string]string{
		"HOIST_SSH_KEY":         read(filepath.Join(home, "lab", "id_ed25519")),
		"HOIST_SSH_KNOWN_HOSTS": strings.Join(pinned, "\n"),
		"HOIST_AGE_KEY":         read(filepath.Join(home, "keys", "ciapp.age")),
		// The app has no store: the secret is not set, and GitHub
		// gives an unset secret as "".
		"HOIST_STORE_KEY": "",
	}
	// The release page, on loopback: what scripts/release.sh publishes
	// for the version the workflow installs.
	version := w.Env["HOIST_VERSION"]
	if version == "" {
		t.Fatal("the workflow does not set HOIST_VERSION")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	published, err := makeRelease(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	page := httptest.NewServer(http.StripPrefix("/"+version, http.FileServer(http.Dir(published))))
	defer page.Close()
	sums, err := hostbin.ReadSums(filepath.Join(published, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}

	runner := t.TempDir()
	// The runner's sudo asks for no password; /usr/local is the runner's
	// own prefix here.
	prefix, shims := filepath.Join(runner, "usr-local"), filepath.Join(runner, "shims")
	for _, d := range []string{prefix, shims} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(shims, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(prefix, "bin", "hoist")
	t.Cleanup(func() { hoist(context.Background(), a.dir, "setup", "--host", h) }) // the test's hoist back
	env := []string{"HOME=" + runner, "HOIST_HOME=" + filepath.Join(runner, "hoist"), "HOIST_CACHE=" + filepath.Join(work, "cache"),
		"PATH=" + filepath.Join(prefix, "bin") + ":" + shims + ":" + os.Getenv("PATH"), "CI=true", "LANG=C.UTF-8"}
	secretRef := regexp.MustCompile(`^\$\{\{ secrets\.(\w+) \}\}$`)
	for k, v := range w.Env {
		if m := secretRef.FindStringSubmatch(v); m != nil {
			val, ok := secrets[m[1]]
			if !ok {
				t.Fatalf("the workflow sets %s from secret %s, which this test does not know", k, m[1])
			}
			v = val
		}
		env = append(env, k+"="+v)
	}
	for _, k := range []string{"HOIST_SSH_KEY", "HOIST_SSH_KNOWN_HOSTS", "HOIST_AGE_KEY"} {
		if !strings.Contains(strings.Join(env, "\x00"), k+"=") {
			t.Fatalf("the workflow does not set %s", k)
		}
	}
	// What the install step fetches from the release page, and where it
	// unpacks it: each replaced once, or the test and the page are out
	// of step.
	here := map[string]string{
		"https://github.com/hoistdev/hoist/releases/download/": page.URL + "/",
		"sudo tar -C /usr/local ":                              "sudo tar -C " + prefix + " ",
	}
	runStep := func(job, step string) string {
		t.Helper()
		script := w.step(t, job, step)
		if step == "install hoist" {
			for from, to := range here {
				if n := strings.Count(script, from); n != 1 {
					t.Fatalf("%s job, step %q has %q %d times, want once:\n%s", job, step, from, n, script)
				}
				script = strings.ReplaceAll(script, from, to)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
		cmd.Dir, cmd.Env = a.dir, env
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr // as a runner's log shows both
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s job, step %q: %v\n%s", job, step, err, stderr.String())
		}
		if s := stderr.String(); strings.ContainsAny(s, "\x1b\r") {
			t.Errorf("%s job, step %q wrote escape codes or carriage returns, not plain lines:\n%q", job, step, s)
		}
		return stderr.String()
	}
	deployed := func() string {
		t.Helper()
		var out struct {
			deploy.Outcome
			Commit string `json:"commit"`
		}
		b := read(filepath.Join(a.dir, "deploy.json"))
		if err := json.Unmarshal([]byte(b), &out); err != nil || out.Release == "" || len(out.Hosts) != 1 || out.Hosts[0].Status != deploy.StatusDeployed {
			t.Fatalf("deploy.json: %v\n%s", err, b)
		}
		return out.Release
	}

	// The install step: the archive checked against SHA256SUMS, unpacked,
	// and its hoist --version naming the release, its commit and both
	// host platforms, from the archive's lib/hoist.
	log := runStep("deploy", "install hoist")
	archive := "hoist_" + version + "_linux_amd64.tar.gz"
	if !strings.Contains(log, archive+": OK") || sums[archive] == "" {
		t.Errorf("the install step did not check %s against SHA256SUMS:\n%s", archive, log)
	}
	head, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(prefix, "bin", "..", "lib", "hoist")
	hostSums, err := hostbin.ReadSums(filepath.Join(lib, hostbin.SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	hostSum := hostSums[hostbin.FileName("linux/amd64")]
	for _, want := range []string{"hoist " + version + " (commit " + string(head[:12]), "linux/amd64 (this binary)", "linux/arm64 (" + filepath.Join(lib, "hoist-linux-arm64") + ")"} {
		if !strings.Contains(log, want) {
			t.Errorf("the install step's hoist --version does not say %q:\n%s", want, log)
		}
	}

	log = runStep("deploy", "deploy")
	first := deployed()
	a.wantServed(t, []string{h}, first)
	// The host was set up by the test's hoist: setup puts the release's
	// on it, checked.
	if !regexp.MustCompile(regexp.QuoteMeta(h) + `: installed hoist at /usr/local/bin/hoist \(linux/amd64, .*sha256 ` + hostSum[:12]).MatchString(log) {
		t.Errorf("the deploy step's setup does not say it installed the release's hoist (sha256 %.12s):\n%s", hostSum, log)
	}
	if sum, runs := hostHoist(t, h); sum != hostSum || !strings.Contains(runs, "hoist "+version) {
		t.Errorf("%s runs %q (sha256 %.12s), want the release's hoist (%.12s)", h, runs, sum, hostSum)
	}
	a.change(t)
	runStep("deploy", "deploy")
	second := deployed()
	if second == first {
		t.Fatalf("the second deploy made release %s again", second)
	}
	a.wantServed(t, []string{h}, second)

	runStep("rollback", "install hoist")
	runStep("rollback", "roll back")
	var back []struct {
		Host    string `json:"host"`
		OK      bool   `json:"ok"`
		Release string `json:"release"`
	}
	if b := read(filepath.Join(a.dir, "rollback.json")); json.Unmarshal([]byte(b), &back) != nil || len(back) != 1 || !back[0].OK || back[0].Release != first {
		t.Errorf("rollback.json %q, want %s back on %s", b, first, h)
	}
	a.wantServed(t, []string{h}, first)

	skb, stderr, err := runBinEnv(t, env, installed, a.dir, "exec", "--", "sh", "-c", `printf %s "$SECRET_KEY_BASE"`)
	if err != nil || len(skb) != 64 {
		t.Errorf("the app sees SECRET_KEY_BASE of %d characters (%v)\n%s", len(skb), err, stderr)
	}
	// The other lab host's key is not pinned: refused, not trusted on
	// first use, and nothing is written to the runner's home.
	_, stderr, err = runBinEnv(t, env, installed, a.dir, "status", "--host", hosts[0])
	if err == nil || !strings.Contains(stderr, hosts[0]) {
		t.Errorf("a host whose key is not pinned: %v\n%s", err, stderr)
	}
	left, _ := filepath.Glob(filepath.Join(runner, "*", "*"))
	for _, p := range left {
		if strings.Contains(p, "known_hosts") {
			t.Errorf("a host key was recorded in %s", p)
		}
	}
}
