//go:build lab

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/hostbin"
)

// An arm64 lab host, booted under qemu-user emulation on this amd64
// machine: slow, but a real Debian arm64 host with systemd and sshd.
const armLab = "e2earm"

var (
	armOnce sync.Once
	armHost string
	armErr  error

	archiveOnce sync.Once
	archiveDir  string
	archiveErr  error
)

func needArmHost(t *testing.T) string {
	t.Helper()
	needLab(t)
	armOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		hoist(ctx, "", "lab", "down", "--name", armLab)
		stdout, stderr, err := hoist(ctx, "", "lab", "up", "--name", armLab, "--hosts", "1", "--arch", "arm64")
		if err != nil {
			armErr = fmt.Errorf("hoist lab up --arch arm64: %v\n%s", err, stderr)
			return
		}
		labsUp = append(labsUp, armLab)
		armHost = strings.TrimSpace(stdout)
	})
	if armErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("arm64 lab host unavailable under CI: %v", armErr)
		}
		t.Skipf("arm64 lab host unavailable: %v", armErr)
	}
	return armHost
}

// releaseArchive makes this tree's release archive for linux/amd64 with
// scripts/release.sh, as an operator downloads it, and unpacks it: its
// bin/hoist is the operator's, lib/hoist holds the hosts'.
func releaseArchive(t *testing.T) string {
	t.Helper()
	archiveOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		var out string
		if out, archiveErr = makeRelease(ctx, "e2e-archive"); archiveErr != nil {
			return
		}
		untar := exec.CommandContext(ctx, "tar", "-C", out, "-xzf", filepath.Join(out, "hoist_e2e-archive_linux_amd64.tar.gz"))
		if b, err := untar.CombinedOutput(); err != nil {
			archiveErr = fmt.Errorf("untar: %v\n%s", err, b)
			return
		}
		archiveDir = filepath.Join(out, "hoist_e2e-archive_linux_amd64")
	})
	if archiveErr != nil {
		t.Fatal(archiveErr)
	}
	return archiveDir
}

// makeRelease runs scripts/release.sh VERSION for linux/amd64, as the
// project publishes a release: the directory it returns holds the
// archive and SHA256SUMS.
func makeRelease(ctx context.Context, version string) (string, error) {
	out := filepath.Join(work, "release-"+version)
	cmd := exec.CommandContext(ctx, "bash", "../scripts/release.sh", version, out)
	cmd.Env = append(os.Environ(), "TARGETS=linux/amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("release.sh: %v\n%s", err, b)
	}
	return out, nil
}

// runBin runs a hoist binary other than the test's in dir.
func runBin(t *testing.T, bin, dir string, args ...string) (string, string, error) {
	t.Helper()
	return runBinEnv(t, hoistEnv, bin, dir, args...)
}

func runBinEnv(t *testing.T, env []string, bin, dir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// hostHoist is the sha256 of a host's hoist, and what it says it is.
func hostHoist(t *testing.T, h string) (sum, version string) {
	t.Helper()
	out := onHost(t, h, "sha256sum /usr/local/bin/hoist | cut -d' ' -f1; /usr/local/bin/hoist --version | head -1")
	f := strings.SplitN(strings.TrimSpace(out), "\n", 2)
	if len(f) != 2 {
		t.Fatalf("%s: %q", h, out)
	}
	return f[0], f[1]
}

// buildHoist builds hoist for platform with another version stamped in.
func buildHoist(t *testing.T, platform, version string) string {
	t.Helper()
	out := filepath.Join(work, "hoist-"+version+"-"+strings.ReplaceAll(platform, "/", "-"))
	goos, goarch, _ := strings.Cut(platform, "/")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/hoistdev/hoist/internal/cli.Version="+version, "-o", out, "../cmd/hoist")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hoist %s for %s: %v\n%s", version, platform, err, b)
	}
	return out
}

// TestSetupHostsOfTheirPlatform: an operator with the linux/amd64
// release archive sets up an amd64 and an arm64 host at once: each gets
// the hoist of its own platform (this binary, and the archive's
// lib/hoist/hoist-linux-arm64), checked against SHA256SUMS; a setup
// again sends nothing; a Go app built for linux/arm64 deploys and serves
// on the arm64 host. A damaged host binary is refused by the host, which
// keeps the hoist it had; a hoist with no binary for a host's platform
// says what to fetch.
func TestSetupHostsOfTheirPlatform(t *testing.T) {
	amd := needLab(t)[0]
	arm := needArmHost(t)
	rel := releaseArchive(t)
	op := filepath.Join(rel, "bin", "hoist")
	sums, err := hostbin.ReadSums(filepath.Join(rel, "lib", "hoist", hostbin.SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, "plat", 3472, []string{amd, arm}, "")
	cfg, _ := os.ReadFile(filepath.Join(a.dir, "hoist.yml"))
	// The release is for the arm64 host (deployed with --host).
	a.write(t, "hoist.yml", strings.Replace(string(cfg), "  output: dist\n", "  output: dist\n  target: linux/arm64\n", 1))
	a.commit(t, "arm64")
	t.Cleanup(func() { hoist(context.Background(), a.dir, "setup", "--host", amd) }) // the test's hoist back

	if got, _, err := runBin(t, op, a.dir, "--version"); err != nil || !strings.Contains(got, "commit") ||
		!strings.Contains(got, "linux/amd64 (this binary)") || !strings.Contains(got, "linux/arm64 ("+filepath.Join(rel, "bin", "..", "lib", "hoist", "hoist-linux-arm64")+")") {
		t.Errorf("the archive's hoist --version: %v\n%s", err, got)
	}
	_, stderr, err := runBin(t, op, a.dir, "setup")
	if err != nil {
		t.Fatalf("setup from the archive: %v\n%s", err, stderr)
	}
	for h, name := range map[string]string{amd: "hoist-linux-amd64", arm: "hoist-linux-arm64"} {
		sum, version := hostHoist(t, h)
		if sum != sums[name] || !strings.Contains(version, "hoist e2e-archive") {
			t.Errorf("%s runs %q (sha256 %.12s), want %s of the archive (%.12s)", h, version, sum, name, sums[name])
		}
		if !regexp.MustCompile(regexp.QuoteMeta(h) + `: installed hoist at /usr/local/bin/hoist \(linux/\w+, sent .* with gzip; sha256 ` + sums[name][:12]).MatchString(stderr) {
			t.Errorf("setup does not say it sent %s to %s:\n%s", name, h, stderr)
		}
	}
	if _, version := hostHoist(t, arm); !strings.Contains(version, "linux/arm64") {
		t.Errorf("the arm64 host's hoist says %q", version)
	}
	if _, stderr, err := runBin(t, op, a.dir, "setup"); err != nil || strings.Contains(stderr, "installed hoist") {
		t.Errorf("a setup again: %v; it installed hoist again:\n%s", err, stderr)
	}
	stdout, stderr, err := runBin(t, op, a.dir, "deploy", "--host", arm)
	if err != nil {
		t.Fatalf("deploy to the arm64 host: %v\n%s", err, stderr)
	}
	a.wantServed(t, []string{arm}, strings.TrimSpace(stdout))

	t.Run("damaged binary refused", func(t *testing.T) {
		other := buildHoist(t, "linux/arm64", "e2e-other")
		otherSum, _ := hostbin.FileSum(other)
		if _, stderr, err := runBin(t, op, a.dir, "setup", "--host", arm, "--hoist-binary", other); err != nil {
			t.Fatalf("setup with another hoist: %v\n%s", err, stderr)
		}
		if sum, version := hostHoist(t, arm); sum != otherSum || !strings.Contains(version, "e2e-other") {
			t.Fatalf("the arm64 host runs %q, not the other hoist", version)
		}
		// The archive with its arm64 binary damaged, its SHA256SUMS as
		// published.
		bad := filepath.Join(work, "release-damaged")
		if out, err := exec.Command("cp", "-a", rel, bad).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		binPath := filepath.Join(bad, "lib", "hoist", "hoist-linux-arm64")
		b, _ := os.ReadFile(binPath)
		b[len(b)/2] ^= 0xff
		os.WriteFile(binPath, b, 0o755)
		// On a machine of its own: this one keeps a checked, compressed
		// copy of the good binary, which it would send instead.
		env := append(append([]string{}, hoistEnv...), "HOIST_CACHE="+t.TempDir())
		_, stderr, err := runBinEnv(t, env, filepath.Join(bad, "bin", "hoist"), a.dir, "setup", "--host", arm)
		if err == nil || !strings.Contains(stderr, "is damaged; the host keeps the hoist it had") || !strings.Contains(stderr, "hint: fetch "+binPath+" again") {
			t.Errorf("setup with a damaged binary: %v\n%s", err, stderr)
		}
		if sum, version := hostHoist(t, arm); sum != otherSum || !strings.Contains(version, "e2e-other") {
			t.Errorf("after the damaged binary the host runs %q (sha256 %.12s), want the hoist it had", version, sum)
		}
		if left := onHost(t, arm, "ls -A /usr/local/bin"); strings.TrimSpace(left) != "hoist" {
			t.Errorf("the host's /usr/local/bin holds %q", left)
		}
		if _, stderr, err := runBin(t, op, a.dir, "setup", "--host", arm); err != nil {
			t.Fatalf("setup again with the archive: %v\n%s", err, stderr)
		}
		if sum, _ := hostHoist(t, arm); sum != sums["hoist-linux-arm64"] {
			t.Errorf("the archive's hoist did not go back on the host")
		}
	})

	t.Run("no binary for the platform", func(t *testing.T) {
		// The test's own hoist: linux/amd64, built from the checkout,
		// nothing beside it.
		stderr := failHoist(t, a.dir, "setup", "--host", arm)
		if !strings.Contains(stderr, "no hoist for linux/arm64 here") || !strings.Contains(stderr, "lib/hoist/hoist-linux-arm64") || !strings.Contains(stderr, "--hoist-binary") {
			t.Errorf("setup with no arm64 hoist at hand:\n%s", stderr)
		}
	})
}

// TestSetupPassesHoistOn: a fleet of twelve is given a new hoist once
// through this machine's uplink: one host is sent it, compressed; the
// others fetch it from the hosts that have it, each checking its sum. A
// setup again sends nothing.
func TestSetupPassesHoistOn(t *testing.T) {
	hosts := needFleet(t)
	other := buildHoist(t, "linux/amd64", "e2e-fleet")
	otherSum, _ := hostbin.FileSum(other)
	a := newApp(t, "passon", 3473, hosts, "ssh:\n  parallel: 12\n")
	t.Cleanup(func() { hoist(context.Background(), a.dir, "setup") }) // the test's hoist back
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, stderr, err := hoist(ctx, a.dir, "setup", "--hoist-binary", other)
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, stderr)
	}
	sent := regexp.MustCompile(`(?m)^(\S+): installed hoist at /usr/local/bin/hoist \(linux/amd64, sent (.*) with gzip`).FindAllStringSubmatch(stderr, -1)
	relayed := regexp.MustCompile(`(?m)^(\S+): installed hoist at /usr/local/bin/hoist \(linux/amd64, from (\S+);`).FindAllStringSubmatch(stderr, -1)
	if len(sent) != 1 || len(relayed) != fleetHosts-1 {
		t.Errorf("hoist was sent to %d hosts and relayed to %d; want 1 and %d\n%s", len(sent), len(relayed), fleetHosts-1, stderr)
	}
	for _, h := range hosts {
		if sum, version := hostHoist(t, h); sum != otherSum || !strings.Contains(version, "e2e-fleet") {
			t.Errorf("%s runs %q", h, version)
		}
	}
	if _, stderr, err := hoist(ctx, a.dir, "setup", "--hoist-binary", other); err != nil || strings.Contains(stderr, "installed hoist") {
		t.Errorf("setup again: %v; it installed hoist again:\n%s", err, stderr)
	}
}
