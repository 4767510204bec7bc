package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
)

const (
	id1 = "20261125T010000Z-aaaaaaaaaaaa"
	id2 = "20261125T020000Z-bbbbbbbbbbbb"
	id3 = "20261125T030000Z-cccccccccccc"
)

func install(t *testing.T, l Layout, ids ...string) {
	t.Helper()
	for _, id := range ids {
		ship(t, l, build(t, l.App, id, map[string][]byte{"app*": []byte("#!/bin/sh\n")}))
	}
}

func TestPruneKeepsNewestAndCurrent(t *testing.T) {
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2, id3)
	if err := swapSymlink("releases/"+id1, l.Current()); err != nil {
		t.Fatal(err)
	}
	if err := Prune(l, 2); err != nil {
		t.Fatal(err)
	}
	ids, _ := l.ReleaseIDs()
	if diff := cmp.Diff([]string{id1, id3}, ids); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
}

func TestReleasesAndPrevious(t *testing.T) {
	l := For(t.TempDir(), "hello")
	if prev, err := previousID(l); err != nil || prev != "" {
		t.Fatalf("PreviousID on an empty host = %q, %v", prev, err)
	}
	install(t, l, id1, id2, id3)
	if err := swapSymlink("releases/"+id2, l.Current()); err != nil {
		t.Fatal(err)
	}
	if l.CurrentID() != id2 {
		t.Fatalf("CurrentID = %q", l.CurrentID())
	}
	prev, err := previousID(l)
	if err != nil || prev != id1 {
		t.Errorf("PreviousID = %q, %v; want %s", prev, err, id1)
	}
	rs, err := listReleases(l)
	if err != nil {
		t.Fatal(err)
	}
	var current []string
	for _, r := range rs {
		if r.Current {
			current = append(current, r.ID)
		}
	}
	if len(rs) != 3 || !cmp.Equal(current, []string{id2}) {
		t.Errorf("ListReleases = %+v", rs)
	}
}

func TestLock(t *testing.T) {
	l := For(t.TempDir(), "hello")
	alice := hostproto.Lock{Holder: "alice@a (pid 1)", Since: time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), Op: "deploy"}
	if err := AcquireLock(l, alice); err != nil {
		t.Fatal(err)
	}
	if err := AcquireLock(l, alice); err != nil {
		t.Errorf("re-entrant lock refused: %v", err)
	}
	err := AcquireLock(l, hostproto.Lock{Holder: "bob@b (pid 2)"})
	var le *hostproto.LockedError
	if !errors.As(err, &le) || le.Lock.Holder != alice.Holder || !le.Lock.Since.Equal(alice.Since) {
		t.Fatalf("second holder got %v, want LockedError naming alice", err)
	}
	if err := releaseLock(l, "bob@b (pid 2)", false); err == nil {
		t.Error("bob released alice's lock")
	}
	if err := releaseLock(l, "", true); err != nil {
		t.Fatal(err)
	}
	if lk, _ := ReadLock(l); lk != nil {
		t.Errorf("lock still held by %+v", lk)
	}
}

func TestProtocolCarriesStructuredErrors(t *testing.T) {
	var buf bytes.Buffer
	he := &hostproto.HealthError{ID: id1, Reason: "GET /up answered 500", Journal: "boom"}
	hostproto.WriteError(&buf, he)
	err := hostproto.DecodeResponse(buf.Bytes(), nil)
	var got *hostproto.HealthError
	if !errors.As(err, &got) || got.Journal != "boom" {
		t.Fatalf("decoded %v, want the HealthError back", err)
	}
	buf.Reset()
	if err := hostproto.WriteResult(&buf, hostproto.Need{Have: 7}); err != nil {
		t.Fatal(err)
	}
	var st hostproto.Need
	if err := hostproto.DecodeResponse(buf.Bytes(), &st); err != nil || st.Have != 7 {
		t.Fatalf("decoded %+v, %v", st, err)
	}
	buf.Reset()
	hostproto.WriteError(&buf, fmt.Errorf("fetch: %w", &hostproto.RelayError{Addr: "10.0.0.1:7373", Reason: "timeout"}))
	var re *hostproto.RelayError
	if err := hostproto.DecodeResponse(buf.Bytes(), nil); !errors.As(err, &re) || re.Reached || re.Addr != "10.0.0.1:7373" {
		t.Fatalf("decoded %v, want the RelayError back", err)
	}
	if err := hostproto.DecodeResponse([]byte("sh: hoist: not found"), nil); err == nil {
		t.Fatal("garbage decoded as success")
	}
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	os.WriteFile(p, []byte("# comment\nA=1\n\nB=\"two words\"\n C = 'x'\nnot a var\n"), 0o600)
	got, err := readEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=1", "B=two words", "C=x"}, got); diff != "" {
		t.Error(diff)
	}
}

func TestQuote(t *testing.T) {
	tests := map[string]string{"plain": "plain", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "$(rm)": "'$(rm)'"}
	for in, want := range tests {
		if got := transport.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := writeFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	entries, _ := os.ReadDir(filepath.Dir(p))
	if string(b) != "two" || fi.Mode().Perm() != 0o600 || len(entries) != 1 {
		t.Errorf("content %q mode %v entries %d", b, fi.Mode(), len(entries))
	}
}

func TestCheckTarget(t *testing.T) {
	host := hostproto.HostFacts{OS: "linux", Arch: "amd64", GLIBC: "2.36"}
	tests := map[string]struct {
		m    release.Manifest
		want string // "" for accepted
	}{
		"same":           {release.Manifest{OS: "linux", Arch: "amd64", GLIBC: "2.34"}, ""},
		"static":         {release.Manifest{OS: "linux", Arch: "amd64"}, ""},
		"other arch":     {release.Manifest{OS: "linux", Arch: "arm64"}, "built for linux/arm64 but this host is linux/amd64"},
		"newer glibc":    {release.Manifest{OS: "linux", Arch: "amd64", GLIBC: "2.39"}, "needs glibc 2.39 but this host has 2.36"},
		"equal glibc":    {release.Manifest{OS: "linux", Arch: "amd64", GLIBC: "2.36"}, ""},
		"glibc 2.4<2.36": {release.Manifest{OS: "linux", Arch: "amd64", GLIBC: "2.4"}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			tt.m.ID = id1
			err := checkTarget(&tt.m, host)
			if tt.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestFailedReleasesAreNotReleases: a failed release is listed as
// failed, skipped by a rollback without an id, not counted toward keep,
// and pruned first (all but the newest failure); port files and
// activation logs go with their releases.
func TestFailedReleasesAreNotReleases(t *testing.T) {
	const (
		id4 = "20261125T040000Z-dddddddddddd"
		id5 = "20261125T050000Z-eeeeeeeeeeee"
		id6 = "20261125T060000Z-ffffffffffff"
	)
	l := For(t.TempDir(), "hello")
	install(t, l, id1, id2, id3, id4, id5, id6)
	// id2 and id4 and id6 failed; id5 is current.
	for _, id := range []string{id2, id4, id6} {
		if err := markFailed(l, id, "GET /up answered 500"); err != nil {
			t.Fatal(err)
		}
	}
	if err := swapSymlink("releases/"+id5, l.Current()); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(l.Root, "ports"), 0o755)
	os.MkdirAll(l.activationsDir(), 0o755)
	for _, id := range []string{id1, id2, id3, id4, id5, id6, "20251125T000000Z-000000000000"} {
		os.WriteFile(l.portFile(id), []byte("PORT=3000\n"), 0o644)
		os.WriteFile(l.activationLog(id), []byte("== activating\n"), 0o600)
	}
	if prev, err := previousID(l); err != nil || prev != id3 {
		t.Errorf("PreviousID = %q, %v; want %s (skipping the failed %s)", prev, err, id3, id4)
	}
	rs, err := listReleases(l)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, r := range rs {
		if r.Failed {
			failed = append(failed, r.ID)
			if r.FailReason != "GET /up answered 500" {
				t.Errorf("%s: reason %q", r.ID, r.FailReason)
			}
		}
	}
	if diff := cmp.Diff([]string{id2, id4, id6}, failed); diff != "" {
		t.Errorf("failed releases (-want +got):\n%s", diff)
	}
	// keep 2: the good ones are id1, id3, id5 (current): id1 goes; of the
	// failed, only the newest (id6) stays.
	if err := Prune(l, 2); err != nil {
		t.Fatal(err)
	}
	ids, _ := l.ReleaseIDs()
	if diff := cmp.Diff([]string{id3, id5, id6}, ids); diff != "" {
		t.Errorf("after prune (-want +got):\n%s", diff)
	}
	for dir, suffix := range map[string]string{l.Ports(): ".env", l.activationsDir(): ".log"} {
		entries, _ := os.ReadDir(dir)
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		if diff := cmp.Diff([]string{id3 + suffix, id5 + suffix, id6 + suffix}, left); diff != "" {
			t.Errorf("%s after prune (-want +got):\n%s", dir, diff)
		}
	}
	if _, ok := failedReleases(l)[id2]; ok {
		t.Errorf("the pruned %s is still marked failed", id2)
	}
	// A failed release that later serves is a good one again.
	if err := clearFailed(l, id6); err != nil {
		t.Fatal(err)
	}
	if _, ok := failedReleases(l)[id6]; ok {
		t.Error("mark not cleared")
	}
}
