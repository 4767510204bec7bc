package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// A replacement is invisible until Commit, and leaves nothing behind
// when aborted.
func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("before Commit the file holds %q, want the old content", b)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // deferred after a commit: nothing
	fi, err := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "new" || err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after Commit: %q, mode %v, %v", b, fi.Mode(), err)
	}
	g, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("dropped"))
	g.Abort()
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("after Abort the file holds %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
