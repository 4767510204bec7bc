package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A host with the local repository has it as its only apt source: the
// mirror's sources, which it cannot reach, are gone.
func TestUseAptRepo(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://deb.debian.org/debian bookworm main\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), []byte("URIs: http://deb.debian.org/debian\n"), 0o644)
	if err := useAptRepo(root); err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	filepath.Walk(filepath.Join(root, "etc/apt"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sources.Write(b)
		}
		return nil
	})
	if strings.Contains(sources.String(), "deb.debian.org") || !strings.Contains(sources.String(), "deb [trusted=yes] file:"+AptRepoMount+" ./") {
		t.Errorf("apt sources after useAptRepo:\n%s", sources.String())
	}
	if fi, err := os.Stat(filepath.Join(root, AptRepoMount)); err != nil || !fi.IsDir() {
		t.Errorf("the mount point: %v", err)
	}
}

// A package name that could be read as a shell word or an apt option is
// refused before anything is downloaded.
func TestAptRepoRefusesBadNames(t *testing.T) {
	o := Options{CacheDir: t.TempDir(), Suite: "bookworm"}
	for _, name := range []string{"pg;reboot", "-o", "Pg", ""} {
		if _, err := ensureAptRepo(context.Background(), o, t.TempDir(), []string{"postgresql", name}); err == nil || !strings.Contains(err.Error(), "is not a Debian package name") {
			t.Errorf("%q: %v", name, err)
		}
	}
}
