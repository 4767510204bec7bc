package cli

import (
	"runtime/debug"
	"testing"
)

// TestCommitOf: hoist --version names the commit of every kind of
// build: from a checkout (Go's VCS stamp), go install of a commit (its
// pseudo-version), go install of a tag (the tag, since Go records no
// commit for a downloaded module).
func TestCommitOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := map[string]struct {
		bi   *debug.BuildInfo
		want string
	}{
		"no build information": {nil, "unknown"},
		"checkout":             {&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("4f3f5cf6a1b2c3d4e5f60718293a4b5c6d7e8f90", "false")}, "4f3f5cf6a1b2"},
		"checkout, changed":    {&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("4f3f5cf6a1b2c3d4e5f60718293a4b5c6d7e8f90", "true")}, "4f3f5cf6a1b2+dirty"},
		"checkout without VCS": {&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "unknown"},
		"pseudo-version":       {&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261125014500-4c04374a1b2c"}}, "4c04374a1b2c"},
		"pseudo after a tag":   {&debug.BuildInfo{Main: debug.Module{Version: "v0.1.1-0.20261125014500-4c04374a1b2c"}}, "4c04374a1b2c"},
		"tag":                  {&debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}}, "tagged v0.1.0"},
		"pre-release tag":      {&debug.BuildInfo{Main: debug.Module{Version: "v0.2.0-rc.1"}}, "tagged v0.2.0-rc.1"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := commitOf(tt.bi); got != tt.want {
				t.Errorf("commitOf = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCommitOfARelease: a release build shows the commit scripts/release.sh
// stamped in, as short as Go's own stamp.
func TestCommitOfARelease(t *testing.T) {
	old := Commit
	defer func() { Commit = old }()
	for stamped, want := range map[string]string{
		"4f3f5cf6a1b2c3d4e5f60718293a4b5c6d7e8f90":       "4f3f5cf6a1b2",
		"4f3f5cf6a1b2c3d4e5f60718293a4b5c6d7e8f90+dirty": "4f3f5cf6a1b2+dirty",
		"4f3f5cf": "4f3f5cf",
		"unknown": "unknown",
	} {
		Commit = stamped
		if got := commit(); got != want {
			t.Errorf("Commit %q: commit() = %q, want %q", stamped, got, want)
		}
	}
}
