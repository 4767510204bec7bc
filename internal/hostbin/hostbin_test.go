package hostbin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/usererr"
)

// fakeELF is an ELF header for machine, with filler after it so that
// two of one platform differ.
func fakeELF(machine elf.Machine, filler string) []byte {
	b := make([]byte, 64)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(b[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(b[18:], uint16(machine))
	binary.LittleEndian.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	binary.LittleEndian.PutUint16(b[52:], 64) // header size
	return append(b, filler...)
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, p string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFinder: each platform's binary comes from --hoist-binary first
// (taken for the platform its header names, with the sum published
// beside it), then this hoist for its own platform, then a directory of
// host binaries holding this hoist's build, then a build with Go; with
// none, the error names what to fetch.
func TestFinder(t *testing.T) {
	dir := t.TempDir()
	self := writeFile(t, filepath.Join(dir, "bin", "hoist"), fakeELF(elf.EM_X86_64, "self"))
	given := writeFile(t, filepath.Join(dir, "given", "hoist"), fakeELF(elf.EM_AARCH64, "given"))
	writeFile(t, given+".sha256", []byte(strings.Repeat("ab", 32)+"  hoist\n"))
	lib := filepath.Join(dir, "lib", "hoist")
	arm := fakeELF(elf.EM_AARCH64, "lib")
	writeFile(t, filepath.Join(lib, "hoist-linux-arm64"), arm)
	writeFile(t, filepath.Join(lib, SumsFile), []byte(sumOf(arm)+"  hoist-linux-arm64\n"))
	stale := filepath.Join(dir, "stale")
	writeFile(t, filepath.Join(stale, "hoist-linux-arm64"), fakeELF(elf.EM_AARCH64, "old"))
	release := filepath.Join(dir, "release", "lib", "hoist")
	relArm := fakeELF(elf.EM_AARCH64, "release")
	writeFile(t, filepath.Join(release, "hoist-linux-arm64"), relArm)
	writeFile(t, filepath.Join(release, SumsFile), []byte(sumOf(relArm)+"  hoist-linux-arm64\n"))
	writeFile(t, filepath.Join(release, BuildFile), []byte(ReleaseIdentity("v3", "abc")+"\n"))
	ids := map[string]string{self: "v2", filepath.Join(lib, "hoist-linux-arm64"): "v2", filepath.Join(stale, "hoist-linux-arm64"): "v1"}
	identity := func(p string) (string, error) { return ids[p], nil }
	built := 0
	build := func(_ context.Context, platform, out string) error {
		built++
		return os.WriteFile(out, fakeELF(elf.EM_AARCH64, "built "+platform), 0o755)
	}

	tests := map[string]struct {
		f        *Finder
		platform string
		path     string // want; "" for an error
		sum      string
	}{
		"given wins":           {&Finder{Self: self, SelfPlatform: "linux/amd64", Given: []string{given}, Dirs: []string{lib}}, "linux/arm64", given, strings.Repeat("ab", 32)},
		"given is for another": {&Finder{Self: self, SelfPlatform: "linux/amd64", Given: []string{given}}, "linux/amd64", self, ""},
		"self":                 {&Finder{Self: self, SelfPlatform: "linux/amd64", Dirs: []string{lib}}, "linux/amd64", self, ""},
		"lib dir":              {&Finder{Self: self, SelfPlatform: "darwin/arm64", Dirs: []string{stale, lib}}, "linux/arm64", filepath.Join(lib, "hoist-linux-arm64"), sumOf(arm)},
		"release archive":      {&Finder{Self: self, SelfPlatform: "darwin/arm64", SelfIdentity: ReleaseIdentity("v3", "abc"), Dirs: []string{lib, release}}, "linux/arm64", filepath.Join(release, "hoist-linux-arm64"), sumOf(relArm)},
		"another release":      {&Finder{Self: self, SelfPlatform: "darwin/arm64", SelfIdentity: ReleaseIdentity("v4", "def"), Dirs: []string{release}}, "linux/arm64", "", ""},
		"stale dir only":       {&Finder{Self: self, SelfPlatform: "darwin/arm64", Dirs: []string{stale}}, "linux/arm64", "", ""},
		"built":                {&Finder{Self: self, SelfPlatform: "darwin/arm64", Dirs: []string{stale}, BuildDir: filepath.Join(dir, "built"), Build: build}, "linux/arm64", "built", ""},
		"none":                 {&Finder{Self: self, SelfPlatform: "darwin/arm64"}, "linux/amd64", "", ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			tt.f.Identity, tt.f.Log = identity, &log
			b, err := tt.f.Find(context.Background(), tt.platform)
			if tt.path == "" {
				hint := usererr.HintOf(err)
				if err == nil || !strings.Contains(err.Error(), "no hoist for "+tt.platform) || !strings.Contains(hint, FileName(tt.platform)) || !strings.Contains(hint, "--hoist-binary") {
					t.Fatalf("Find = %+v, %v (hint %q); want an error naming what to fetch", b, err, hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.sum
			if want == "" {
				want, _ = FileSum(b.Path)
			}
			if (tt.path != "built" && b.Path != tt.path) || b.Platform != tt.platform || b.SHA256 != want {
				t.Errorf("Find = %+v, want %s with sum %.12s", b, tt.path, want)
			}
			if name == "lib dir" && !strings.Contains(log.String(), "stale/hoist-linux-arm64 is not this hoist's build (v1, not v2)") {
				t.Errorf("the stale binary is not named:\n%s", log.String())
			}
			if name == "built" {
				if _, err := tt.f.Find(context.Background(), tt.platform); err != nil || built != 1 {
					t.Errorf("a second Find built again (%d) or failed: %v", built, err)
				}
				again := &Finder{Self: tt.f.Self, SelfPlatform: tt.f.SelfPlatform, Dirs: tt.f.Dirs, BuildDir: tt.f.BuildDir, Build: tt.f.Build, Identity: identity}
				if _, err := again.Find(context.Background(), tt.platform); err != nil || built != 1 {
					t.Errorf("a new Finder built again (%d) instead of taking the kept build: %v", built, err)
				}
			}
		})
	}
}

func TestPlatformOf(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		b    []byte
		want string
	}{
		{fakeELF(elf.EM_X86_64, ""), "linux/amd64"},
		{fakeELF(elf.EM_AARCH64, ""), "linux/arm64"},
		{[]byte("\xcf\xfa\xed\xfe not ELF"), ""},
	} {
		p := writeFile(t, filepath.Join(dir, tt.want+"x"), tt.b)
		got, err := PlatformOf(p)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("PlatformOf = %q, %v; want %q", got, err, tt.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "-ldflags", Value: "-s -w -X " + Module + "/internal/cli.Version=v1.2.3"},
		{Key: "vcs.revision", Value: "4c04374"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got, want := Identity(bi), "commit 4c04374+dirty, version v1.2.3"; got != want {
		t.Errorf("Identity = %q, want %q", got, want)
	}
	released := &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "-ldflags", Value: "-s -w -X " + Module + "/internal/cli.Version=v1.2.3 -X " + Module + "/internal/cli.Commit=4c04374"},
	}}
	if got, want := Identity(released), "commit 4c04374, version v1.2.3"; got != want {
		t.Errorf("Identity of the release script's build = %q, want %q", got, want)
	}
	installed := &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v1.2.3"}}
	if got := Identity(installed); got != "v1.2.3" {
		t.Errorf("Identity of go install's build = %q", got)
	}
	// This test binary is a Go binary with build information.
	if id, err := FileIdentity(os.Args[0]); err != nil {
		t.Errorf("FileIdentity of the test binary: %q, %v", id, err)
	}
}

func TestParseProbe(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	tests := map[string]struct {
		out  string
		want probe
	}{
		"fresh arm64 host": {"Linux aarch64\n-\ngzip bash timeout \n10.0.0.9 50000 10.0.0.2 22\n",
			probe{platform: "linux/arm64", tools: map[string]bool{"gzip": true, "bash": true, "timeout": true}, addr: "10.0.0.2"}},
		"hoist there": {"Linux x86_64\n" + sum + "  /usr/local/bin/hoist\nzstd gzip \n\n",
			probe{platform: "linux/amd64", sum: sum, tools: map[string]bool{"zstd": true, "gzip": true}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseProbe(tt.out)
			if err != nil || got.platform != tt.want.platform || got.sum != tt.want.sum || got.addr != tt.want.addr || len(got.tools) != len(tt.want.tools) {
				t.Errorf("parseProbe = %+v, %v; want %+v", got, err, tt.want)
			}
			for k := range tt.want.tools {
				if !got.tools[k] {
					t.Errorf("tool %s missing", k)
				}
			}
		})
	}
	if _, err := parseProbe("sh: uname: not found\n"); err == nil {
		t.Error("a broken answer parsed")
	}
}

// TestInstallScript runs the script a host runs, here, on a file of its
// own: a whole binary with its sum replaces the old one; a damaged one
// exits 86 and leaves the old one and no temporary file.
func TestInstallScript(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "hoist")
	writeFile(t, bin, []byte("old hoist"))
	newBin := []byte("new hoist\n")
	src := writeFile(t, filepath.Join(dir, "new"), newBin)
	run := func(want string) error {
		return exec.Command("sh", "-c", installScript(bin, want, "cat "+src)).Run()
	}
	err := run(sumOf([]byte("what was published")))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitDamaged {
		t.Fatalf("a damaged binary: %v, want exit %d", err, exitDamaged)
	}
	if b, _ := os.ReadFile(bin); string(b) != "old hoist" {
		t.Errorf("after a damaged binary the host has %q", b)
	}
	if err := run(sumOf(newBin)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bin); !bytes.Equal(b, newBin) {
		t.Errorf("the host has %q", b)
	}
	if fi, _ := os.Stat(bin); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "bin", ".hoist.*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestPackedSend: what is sent unpacks to the binary; a copy is kept
// for the next host only when the binary had its sum.
func TestPackedSend(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("hoist "), 50000)
	p := writeFile(t, filepath.Join(dir, "hoist"), data)
	pk := &packed{dir: filepath.Join(dir, "cache")}
	for _, c := range []codec{gzipCodec, zstdCodec} {
		b := &Binary{Path: p, SHA256: sumOf(data)}
		for round := 0; round < 2; round++ { // the second from the kept copy
			var out bytes.Buffer
			n, err := pk.send(b, c, &out)
			if err != nil || n != int64(out.Len()) || n > int64(len(data))/10 {
				t.Fatalf("%s round %d: %d bytes, %v", c.name, round, n, err)
			}
			if got := unpack(t, c, out.Bytes()); !bytes.Equal(got, data) {
				t.Fatalf("%s round %d: unpacked %d bytes", c.name, round, len(got))
			}
			if _, err := os.Stat(filepath.Join(pk.dir, b.SHA256+c.ext)); err != nil {
				t.Errorf("%s: no copy kept: %v", c.name, err)
			}
		}
	}
	damaged := &Binary{Path: p, SHA256: strings.Repeat("1", 64)}
	if _, err := pk.send(damaged, gzipCodec, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pk.dir, damaged.SHA256+".gz")); err == nil {
		t.Error("a copy was kept of a binary without its sum")
	}
}

// writeCounter counts the writes it is given.
type writeCounter struct {
	writes, bytes int
}

func (w *writeCounter) Write(b []byte) (int, error) {
	w.writes++
	w.bytes += len(b)
	return len(b), nil
}

// TestPackedSendWritesWhole: what goes to the host goes in large writes,
// each an SSH packet: the compressors write a few hundred bytes at a
// time, and a 30 MiB hoist in 250-byte packets took minutes to a lab
// host, long enough for setup to give the connection up.
func TestPackedSendWritesWhole(t *testing.T) {
	dir := t.TempDir()
	// A binary's mix of code and data, which the compressors write in
	// small pieces: this test's own.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	data := self[:min(len(self), 4<<20)]
	p := writeFile(t, filepath.Join(dir, "hoist"), data)
	for _, c := range []codec{gzipCodec, zstdCodec} {
		for _, keep := range []string{"", filepath.Join(dir, "cache")} { // compressed as it goes, then from the kept copy
			pk := &packed{dir: keep}
			for round := 0; round < 2; round++ {
				var w writeCounter
				if _, err := pk.send(&Binary{Path: p, SHA256: sumOf(data)}, c, &w); err != nil {
					t.Fatal(err)
				}
				if most := w.bytes/(32<<10) + 2; w.writes > most {
					t.Errorf("%s (kept in %q) round %d: %d bytes in %d writes, want at most %d", c.name, keep, round, w.bytes, w.writes, most)
				}
			}
		}
	}
}

func unpack(t *testing.T, c codec, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c.name {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	default:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoBuilder: the build is go install of this hoist's module version,
// cross-compiled without cgo and without GOBIN (which go refuses for a
// cross-compiled command); a build from a checkout has none.
func TestGoBuilder(t *testing.T) {
	if GoBuilder(&debug.BuildInfo{Main: debug.Module{Path: Module, Version: "(devel)"}}, "/bin/true") != nil {
		t.Error("a build from a checkout has a Go builder")
	}
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	fakeGo := writeFile(t, filepath.Join(dir, "go"), []byte(`#!/bin/sh
[ "$1" = env ] && exit 0
echo "$@ GOOS=$GOOS GOARCH=$GOARCH CGO_ENABLED=$CGO_ENABLED GOBIN=$GOBIN" > `+record+`
mkdir -p "$GOPATH/bin/${GOOS}_$GOARCH" && echo built > "$GOPATH/bin/${GOOS}_$GOARCH/hoist"
`))
	t.Setenv("GOBIN", "/somewhere")
	build := GoBuilder(&debug.BuildInfo{Main: debug.Module{Path: Module, Version: "v1.2.3"}}, fakeGo)
	out := filepath.Join(dir, "out", "hoist-linux-arm64")
	os.MkdirAll(filepath.Dir(out), 0o755)
	if err := build(context.Background(), "linux/arm64", out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(record)
	if want := "install " + Module + "/cmd/hoist@v1.2.3 GOOS=linux GOARCH=arm64 CGO_ENABLED=0 GOBIN=\n"; string(got) != want {
		t.Errorf("go ran as %q, want %q", got, want)
	}
	if b, _ := os.ReadFile(out); string(b) != "built\n" {
		t.Errorf("out holds %q", b)
	}
}

// TestFetchCmd runs the command a host fetches hoist from a peer with,
// here, against a peer that speaks as binary-serve does (the token and
// a newline, then the binary to the end), inside the install script: the
// binary lands whole; from a peer that is gone the fetch fails at once,
// and a wrong token gets nothing (the sum check refuses it).
func TestFetchCmd(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	data := bytes.Repeat([]byte("hoist "), 200000)
	token := randomToken()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				if strings.TrimSpace(line) == token {
					c.Write(data)
				}
			}()
		}
	}()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "hoist")
	run := func(addr, tok string) error {
		get, err := fetchCmd(addr, tok)
		if err != nil {
			return err
		}
		out, err := exec.Command("sh", "-c", installScript(bin, sumOf(data), get)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := run(ln.Addr().String(), token); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bin); !bytes.Equal(b, data) {
		t.Errorf("fetched %d bytes, want %d", len(b), len(data))
	}
	os.Remove(bin)
	if err := run(ln.Addr().String(), randomToken()); err == nil {
		t.Error("a wrong token installed a binary")
	}
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := gone.Addr().String()
	gone.Close()
	if err := run(addr, token); err == nil {
		t.Error("a fetch from a peer that is gone succeeded")
	}
	if _, err := os.Stat(bin); err == nil {
		t.Error("a failed fetch left a binary")
	}
	if _, err := fetchCmd("10.0.0.1:7374", "x; rm -rf /"); err == nil {
		t.Error("a token that is not hex went into the command")
	}
}
