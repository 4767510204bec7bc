package deploy

import (
	"errors"
	"testing"

	"github.com/hoistdev/hoist/internal/fleet"
)

// A step that failed on some hosts says how many of the step's, as the
// CLI's report of the failed hosts does.
func TestHostsErrorCountsTheStep(t *testing.T) {
	err := &HostsError{Verb: "setup", Results: []fleet.Result{{Host: "a"}, {Host: "b", Err: errors.New("down")}, {Host: "c"}}}
	if got, want := err.Error(), "setup failed on 1 of 3 host(s)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// Setup's results keep the hosts' order and each host's first error.
func TestSetupResultsKeepFirstError(t *testing.T) {
	r := newSetupResults([]string{"a", "b"})
	first, second := errors.New("first"), errors.New("second")
	if r.fail([]fleet.Result{{Host: "a"}, {Host: "b"}}) {
		t.Error("a step without errors failed")
	}
	if !r.fail([]fleet.Result{{Host: "b", Err: first}}) {
		t.Error("a step with an error did not fail")
	}
	r.fail([]fleet.Result{{Host: "b", Err: second}})
	got := r.list()
	if len(got) != 2 || got[0].Host != "a" || got[0].Err != nil || got[1].Err != first {
		t.Errorf("results = %+v", got)
	}
}
