package host

import (
	"context"
	"encoding/json"
	"os"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/systemd"
)

// readStatus reports the app's state on this host.
func readStatus(ctx context.Context, l Layout) (*hostproto.Status, error) {
	st := &hostproto.Status{App: l.App, Current: l.CurrentID(), State: "none"}
	lk, err := ReadLock(l)
	if err != nil {
		return nil, err
	}
	st.Lock = lk
	st.Setup = readSetupRecord(l)
	st.Schedule = readTaskStatus(ctx, l)
	if b, err := os.ReadFile(FactsFile(l.Base())); err == nil {
		var f hostproto.HostFacts
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

// listReleases lists the releases on this host, oldest first.
func listReleases(l Layout) ([]hostproto.ReleaseInfo, error) {
	ids, err := l.ReleaseIDs()
	if err != nil {
		return nil, err
	}
	cur := l.CurrentID()
	failed := failedReleases(l)
	out := make([]hostproto.ReleaseInfo, 0, len(ids))
	for _, id := range ids {
		f, isFailed := failed[id]
		ri := hostproto.ReleaseInfo{ID: id, Current: id == cur, Failed: isFailed, FailReason: f.Reason}
		if m, err := l.Manifest(id); err == nil {
			ri.Commit, ri.BuiltAt = m.Commit, m.BuiltAt
		}
		out = append(out, ri)
	}
	return out, nil
}

// previousID returns the newest good release older than the current
// one, for a rollback without an id; "" when there is none. Failed
// releases are skipped.
func previousID(l Layout) (string, error) {
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
