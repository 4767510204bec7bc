package host

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/hoistdev/hoist/internal/systemd"
)

// Status is what `hoist status` shows for one host.
type Status struct {
	App     string    `json:"app"`
	Current string    `json:"current"`          // release id, "" when none
	State   string    `json:"state"`            // the current release unit's ActiveState
	Since   time.Time `json:"since,omitzero"`   // when it entered that state
	Commit  string    `json:"commit,omitempty"` // of the current release
	Lock    *Lock     `json:"lock,omitempty"`
	// Host is what setup recorded about the host.
	Host *HostFacts `json:"host,omitempty"`
}

// ReadStatus reports the app's state on this host.
func ReadStatus(ctx context.Context, l Layout) (*Status, error) {
	st := &Status{App: l.App, Current: l.CurrentID(), State: "none"}
	lk, err := ReadLock(l)
	if err != nil {
		return nil, err
	}
	st.Lock = lk
	if b, err := os.ReadFile(FactsFile(l.Base())); err == nil {
		var f HostFacts
		if json.Unmarshal(b, &f) == nil {
			st.Host = &f
		}
	}
	if st.Current == "" {
		return st, nil
	}
	if m, err := l.Manifest(st.Current); err == nil {
		st.Commit = m.Commit
	}
	u, err := systemd.Show(ctx, systemd.InstanceName(l.App, st.Current))
	if err != nil {
		return nil, err
	}
	st.State, st.Since = u.ActiveState, u.Since
	return st, nil
}

// ReleaseInfo is one release on a host.
type ReleaseInfo struct {
	ID      string    `json:"id"`
	Commit  string    `json:"commit"`
	BuiltAt time.Time `json:"built_at"`
	Current bool      `json:"current"`
	// Failed is set for a release that failed its health check; it is
	// not a rollback target and does not count toward keep_releases.
	Failed     bool   `json:"failed,omitempty"`
	FailReason string `json:"fail_reason,omitempty"`
}

// ListReleases lists the releases on this host, oldest first.
func ListReleases(l Layout) ([]ReleaseInfo, error) {
	ids, err := l.ReleaseIDs()
	if err != nil {
		return nil, err
	}
	cur := l.CurrentID()
	failed := failedReleases(l)
	out := make([]ReleaseInfo, 0, len(ids))
	for _, id := range ids {
		f, isFailed := failed[id]
		ri := ReleaseInfo{ID: id, Current: id == cur, Failed: isFailed, FailReason: f.Reason}
		if m, err := l.Manifest(id); err == nil {
			ri.Commit, ri.BuiltAt = m.Commit, m.BuiltAt
		}
		out = append(out, ri)
	}
	return out, nil
}

// PreviousID returns the newest good release older than the current
// one, for a rollback without an id; "" when there is none. Failed
// releases are skipped.
func PreviousID(l Layout) (string, error) {
	ids, err := l.ReleaseIDs()
	if err != nil {
		return "", err
	}
	cur := l.CurrentID()
	failed := failedReleases(l)
	prev := ""
	for _, id := range ids {
		if id == cur {
			break
		}
		if _, ok := failed[id]; !ok {
			prev = id
		}
	}
	if cur == "" {
		return "", nil
	}
	return prev, nil
}
