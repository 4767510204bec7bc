package lab

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/usererr"
)

// TestPickArch: a lab keeps the architecture it was made with; another
// needs qemu-user registered with the F flag, and says how to get it.
func TestPickArch(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	dir := t.TempDir()
	old := binfmtDir
	binfmtDir = dir
	defer func() { binfmtDir = old }()
	entry := filepath.Join(dir, qemuBinfmt[other])
	tests := map[string]struct {
		arch    string
		st      state
		binfmt  string // "" for none
		want    string
		wantErr string
	}{
		"native":                   {"", state{}, "", "", ""},
		"native named":             {runtime.GOARCH, state{}, "", "", ""},
		"foreign":                  {other, state{}, "enabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n", other, ""},
		"kept from the state":      {"", state{Hosts: []Host{{}}, Arch: other}, "enabled\nflags: F\n", other, ""},
		"another than the state's": {other, state{Hosts: []Host{{}}}, "enabled\nflags: F\n", "", "holds " + runtime.GOARCH + " hosts, not " + other},
		"no qemu":                  {other, state{}, "", "", "apt-get install qemu-user-static binfmt-support"},
		"disabled":                 {other, state{}, "disabled\nflags: F\n", "", "is disabled"},
		"without F":                {other, state{}, "enabled\nflags: P\n", "", "with the F flag"},
		"unknown":                  {"mips", state{}, "", "", "amd64 or arm64, not mips"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			os.Remove(entry)
			if tt.binfmt != "" {
				os.WriteFile(entry, []byte(tt.binfmt), 0o644)
			}
			o := Options{Name: "t", Arch: tt.arch}
			err := o.pickArch(&tt.st)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error()+" "+usererr.HintOf(err), tt.wantErr) {
					t.Fatalf("pickArch: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || o.Arch != tt.want {
				t.Errorf("pickArch: arch %q, %v; want %q", o.Arch, err, tt.want)
			}
		})
	}
}
