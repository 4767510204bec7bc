package build

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/gittest"
	"github.com/hoistdev/hoist/internal/usererr"
)

// TestBuildRefusesAMacBinary: a local build that made a Mach-O binary
// (a Go build on a Mac that ignored GOOS) is refused before it is
// packed, naming the file, with what to do in the hint.
func TestBuildRefusesAMacBinary(t *testing.T) {
	header := make([]byte, 32)
	binary.LittleEndian.PutUint32(header[0:], 0xfeedfacf) // Mach-O, 64-bit
	binary.LittleEndian.PutUint32(header[4:], 0x0100000c) // arm64
	binary.LittleEndian.PutUint32(header[12:], 2)         // an executable
	repo := gittest.Repo(t, map[string]string{"app.macho": string(header)})
	cfg := testConfig(t, "mkdir -p out && cp app.macho out/app", "out")
	cfg.Build.Target = "linux/arm64"
	var log bytes.Buffer
	_, err := Release(context.Background(), Options{Config: cfg, Repo: repo, WorkDir: t.TempDir(), Log: &log})
	if err == nil {
		t.Fatalf("a release of a macOS binary was built for linux/arm64\n%s", log.String())
	}
	hint := usererr.HintOf(err)
	if !strings.Contains(err.Error(), "macOS (Mach-O) binaries (app is darwin/arm64) but build.target is linux/arm64") ||
		!strings.Contains(hint, "GOOS=linux") || !strings.Contains(hint, "builder: container") {
		t.Errorf("error %q, hint %q", err, hint)
	}
}
