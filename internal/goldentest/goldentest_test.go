package goldentest

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that notes a failure instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true; panic(r) }
func (r *recorder) Fatal(...any)          { r.failed = true; panic(r) }

func check(t *testing.T, path string, got []byte) (failed bool) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	Check(r, path, got)
	return
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.golden")
	if !check(t, path, []byte("x\n")) {
		t.Error("a missing golden file passed")
	}
	os.WriteFile(path, []byte("x\n"), 0o644)
	if check(t, path, []byte("x\n")) {
		t.Error("the golden file's own content failed")
	}
	if !check(t, path, []byte("y\n")) {
		t.Error("other content passed")
	}
	*update = true
	defer func() { *update = false }()
	if check(t, filepath.Join(filepath.Dir(path), "new", "b.golden"), []byte("z\n")) {
		t.Error("-update failed")
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "new", "b.golden")); err != nil || string(b) != "z\n" {
		t.Errorf("-update wrote %q, %v", b, err)
	}
}
