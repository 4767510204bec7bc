package cli

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// ciExample is the first YAML block after docs/ci.md's heading.
func ciExample(t *testing.T, doc []byte, heading string) []byte {
	t.Helper()
	m := regexp.MustCompile("(?s)\n## " + regexp.QuoteMeta(heading) + "\n.*?```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/ci.md has no YAML example under %q", heading)
	}
	return m[1]
}

// hoistCommands are the hoist command lines of scripts, without what
// the shell does with their output (> FILE, | tee FILE).
func hoistCommands(scripts []string) []string {
	var out []string
	for _, s := range scripts {
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "hoist ") {
				continue
			}
			if i := strings.IndexAny(line, ">|"); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			out = append(out, line)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestCIDocInStep: docs/ci.md's GitHub Actions and GitLab CI examples
// run the same hoist commands, each a verb and flags hoist has, and
// give hoist the variables the page's table names, which are the ones
// hoist reads. The lab test e2e/ci_test.go runs the GitHub workflow's
// commands as they are written; this keeps the GitLab one, and the
// table, in step with it.
func TestCIDocInStep(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ci.md")
	if err != nil {
		t.Fatal(err)
	}
	var gh struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(ciExample(t, doc, "GitHub Actions"), &gh); err != nil {
		t.Fatalf("the GitHub Actions workflow: %v", err)
	}
	var ghScripts []string
	for _, j := range gh.Jobs {
		for _, s := range j.Steps {
			ghScripts = append(ghScripts, s.Run)
		}
	}
	var gl map[string]any // jobs, and stages: [...]
	if err := yaml.Unmarshal(ciExample(t, doc, "GitLab CI"), &gl); err != nil {
		t.Fatalf("the GitLab CI pipeline: %v", err)
	}
	var glScripts []string
	for _, j := range gl {
		job, _ := j.(map[string]any)
		for _, k := range []string{"before_script", "script"} {
			lines, _ := job[k].([]any)
			for _, l := range lines {
				s, _ := l.(string)
				glScripts = append(glScripts, s)
			}
		}
	}

	ghCmds, glCmds := hoistCommands(ghScripts), hoistCommands(glScripts)
	for _, want := range []string{"hoist --version", "hoist setup", "hoist deploy --json", "hoist rollback --json"} {
		if !slices.Contains(ghCmds, want) {
			t.Errorf("the GitHub Actions workflow does not run %q; it runs %q", want, ghCmds)
		}
	}
	if !slices.Equal(ghCmds, glCmds) {
		t.Errorf("the examples run different hoist commands:\nGitHub Actions %q\nGitLab CI      %q", ghCmds, glCmds)
	}
	for _, line := range hoistCommands(append(ghScripts, glScripts...)) {
		args := strings.Fields(line)[1:]
		root := newRoot(&streams{}, &globalOptions{})
		root.InitDefaultVersionFlag() // as Execute does
		cmd, rest, err := root.Find(args)
		if err != nil || (cmd == root && !strings.HasPrefix(args[0], "-")) {
			t.Errorf("%q: no such verb (%v)", line, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}

	// The table: variable, flag.
	rows := regexp.MustCompile("(?m)^\\| [^|]+ \\| `(HOIST_\\w+)` \\| `(--[\\w-]+) FILE` \\|$").FindAllStringSubmatch(string(doc), -1)
	got := map[string]string{}
	for _, r := range rows {
		got[r[1]] = r[2]
	}
	want := map[string]string{envSSHKey: "--ssh-key", envKnownHosts: "--known-hosts", envAgeKey: "--secrets-key", envStoreKey: "--store-key"}
	if len(got) != len(want) {
		t.Errorf("docs/ci.md's table names %v, want %v", got, want)
	}
	root := newRoot(&streams{}, &globalOptions{})
	for v, flag := range want {
		if got[v] != flag {
			t.Errorf("docs/ci.md's table gives %s the flag %q, want %q", v, got[v], flag)
		}
		if root.PersistentFlags().Lookup(strings.TrimPrefix(flag, "--")) == nil {
			t.Errorf("hoist has no flag %s", flag)
		}
		if gh.Env[v] != "${{ secrets."+v+" }}" {
			t.Errorf("the GitHub Actions workflow sets %s to %q, not from its secret", v, gh.Env[v])
		}
		if !strings.Contains(string(doc), "`"+v+"`") {
			t.Errorf("docs/ci.md does not name %s", v)
		}
	}
}
