package atomicfile

import (
	"errors"
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

// CommitNew never replaces a file: it says the name is taken, and the
// same content commits under another name, leaving nothing behind.
func TestCommitNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Write(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("second"))
	if err := f.CommitNew(); !errors.Is(err, os.ErrExist) {
		t.Fatalf("CommitNew over a file: %v, want os.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first" {
		t.Errorf("the file was replaced: %q", b)
	}
	if err := f.CommitNewAs(p + "-2"); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if b, _ := os.ReadFile(p + "-2"); string(b) != "second" {
		t.Errorf("committed under another name: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left in the directory: %v", ents)
	}
}
