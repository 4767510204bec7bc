package gittest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoAndCommit(t *testing.T) {
	dir := Repo(t, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n"})
	if got := Git(t, dir, "branch", "--show-current"); got != "main\n" {
		t.Errorf("branch = %q, want main", got)
	}
	if got := Git(t, dir, "ls-files"); got != "a.txt\nsub/b.txt\n" {
		t.Errorf("committed files = %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.txt"), []byte("c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Commit(t, dir, "two")
	if got := Git(t, dir, "log", "--format=%s"); got != "two\none\n" {
		t.Errorf("log = %q, want the commits two and one", got)
	}
	if got := Git(t, dir, "status", "--porcelain"); strings.TrimSpace(got) != "" {
		t.Errorf("status after Commit = %q, want clean", got)
	}
}
