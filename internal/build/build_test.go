package build

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCacheKeyFollowsLockfilesOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mix.lock", "%{a: 1}")
	write("lib.ex", "one")
	k1, _ := CacheKey(dir, "rootfs x")
	write("lib.ex", "two") // a code change keeps the caches
	k2, _ := CacheKey(dir, "rootfs x")
	write("mix.lock", "%{a: 2}") // a dependency change does not
	k3, _ := CacheKey(dir, "rootfs x")
	k4, _ := CacheKey(dir, "container y") // nor another build environment
	if k1 != k2 || k2 == k3 || k3 == k4 {
		t.Errorf("keys %s %s %s %s", k1, k2, k3, k4)
	}
}

func TestCachesRestoreAndSave(t *testing.T) {
	cacheDir, checkout := t.TempDir(), t.TempDir()
	c, err := OpenCaches(cacheDir, "app", "k1", []string{"deps", "_build/prod", "/root/.cache/go-build"})
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := c.Mounts()
	if err != nil || len(mounts) != 1 || mounts["/root/.cache/go-build"] == "" {
		t.Fatalf("mounts %v, %v", mounts, err)
	}
	// A first build fills the checkout; saving moves it into the cache.
	os.MkdirAll(filepath.Join(checkout, "_build", "prod", "lib"), 0o755)
	os.WriteFile(filepath.Join(checkout, "_build", "prod", "lib", "x.beam"), []byte("beam"), 0o644)
	if err := c.Save(checkout); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(checkout, "_build", "prod")); !os.IsNotExist(err) {
		t.Error("save left the cache in the checkout")
	}
	// The next build's fresh checkout gets it back.
	next := t.TempDir()
	if err := c.Restore(next); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(next, "_build", "prod", "lib", "x.beam")); err != nil || string(b) != "beam" {
		t.Errorf("restored %q, %v", b, err)
	}
}

func TestOpenCachesKeepsNewestKeys(t *testing.T) {
	cacheDir := t.TempDir()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if _, err := OpenCaches(cacheDir, "app", k, nil); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(cacheDir, "caches", "app"))
	if len(entries) != keep {
		t.Errorf("%d keys kept, want %d", len(entries), keep)
	}
}

// TestPlatformFlag: a container is asked for the target's platform only
// when the engine's machine is of another architecture (an Apple
// Silicon Mac building for amd64 hosts).
func TestPlatformFlag(t *testing.T) {
	native := "linux/" + runtime.GOARCH
	other := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	if got := platformFlag(native); got != nil {
		t.Errorf("platformFlag(%s) = %v, want none", native, got)
	}
	if got := platformFlag(other); len(got) != 2 || got[0] != "--platform" || got[1] != other {
		t.Errorf("platformFlag(%s) = %v", other, got)
	}
}
