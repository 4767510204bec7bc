package release

import (
	"debug/macho"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// machO is the header of a 64-bit Mach-O executable for cpu, with no
// load commands: what a Mac's build makes, as far as Inspect reads.
func machO(cpu macho.Cpu) string {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b[0:], macho.Magic64)
	binary.LittleEndian.PutUint32(b[4:], uint32(cpu))
	binary.LittleEndian.PutUint32(b[12:], uint32(macho.TypeExec))
	return string(b)
}

// fatMachO is a universal binary holding one Mach-O for cpu.
func fatMachO(cpu macho.Cpu) string {
	inner := machO(cpu)
	b := make([]byte, 8+20)
	binary.BigEndian.PutUint32(b[0:], macho.MagicFat)
	binary.BigEndian.PutUint32(b[4:], 1)
	binary.BigEndian.PutUint32(b[8:], uint32(cpu))
	binary.BigEndian.PutUint32(b[16:], 4096)               // offset
	binary.BigEndian.PutUint32(b[20:], uint32(len(inner))) // size
	binary.BigEndian.PutUint32(b[24:], 12)                 // align
	pad := make([]byte, 4096-len(b))
	return string(b) + string(pad) + inner
}

// TestInspectKnowsTheOS: ELF binaries are Linux's, Mach-O ones
// (plain or universal) macOS's, a Java class file (the universal
// binary's magic) is neither, and a release of both OSes is refused.
func TestInspectKnowsTheOS(t *testing.T) {
	elfBin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true to inspect")
	}
	class := "\xca\xfe\xba\xbe\x00\x00\x00\x41" + strings.Repeat("\x00", 64)
	tests := map[string]struct {
		files   map[string]string
		os      string
		arch    string
		wantErr string
	}{
		"elf":             {map[string]string{"bin/true": string(elfBin)}, "linux", "", ""},
		"mach-o arm64":    {map[string]string{"erts/bin/beam.smp": machO(macho.CpuArm64)}, "darwin", "arm64", ""},
		"mach-o amd64":    {map[string]string{"app": machO(macho.CpuAmd64)}, "darwin", "amd64", ""},
		"universal":       {map[string]string{"app": fatMachO(macho.CpuArm64)}, "darwin", "arm64", ""},
		"java class":      {map[string]string{"lib/A.class": class}, "", "", ""},
		"linux and macOS": {map[string]string{"a": string(elfBin), "b": machO(macho.CpuArm64)}, "", "", "mixes operating systems"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for p, c := range tt.files {
				mustWrite(t, filepath.Join(dir, p), c, 0o755)
			}
			n, err := Inspect(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Inspect = %+v, %v; want an error saying %q", n, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.OS != tt.os || (tt.arch != "" && n.Arch != tt.arch) || (tt.os != "" && n.File == "") {
				t.Errorf("Inspect = %+v, want %s/%s", n, tt.os, tt.arch)
			}
		})
	}
}
