package release

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Needs is what a release's binaries require of a host, read from their
// headers: the OS and architecture they are built for and the newest
// glibc symbol version they link against.
type Needs struct {
	OS    string // GOOS name; "" when the release holds no native binary
	Arch  string // GOARCH name; "" when the release holds no native binary
	GLIBC string // like "2.34"; "" when nothing links glibc
	// File is the first native binary, relative to the release, which
	// set OS and Arch: for messages.
	File string
}

var machines = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
	elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
}

var machoCPUs = map[macho.Cpu]string{
	macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64", macho.Cpu386: "386", macho.CpuArm: "arm",
}

// elfOS is the OS an ELF file is for: its OSABI, which Linux binaries
// leave at 0 (System V) or set to GNU.
func elfOS(f *elf.File) string {
	switch f.OSABI {
	case elf.ELFOSABI_NONE, elf.ELFOSABI_LINUX:
		return "linux"
	case elf.ELFOSABI_FREEBSD:
		return "freebsd"
	case elf.ELFOSABI_NETBSD:
		return "netbsd"
	case elf.ELFOSABI_OPENBSD:
		return "openbsd"
	case elf.ELFOSABI_SOLARIS:
		return "solaris"
	}
	return strings.ToLower(strings.TrimPrefix(f.OSABI.String(), "ELFOSABI_"))
}

// Inspect reads the native binaries under dir: ELF files, and Mach-O
// ones, which a build on a Mac makes when it ignores GOOS (or bundles
// the Mac's own Erlang runtime). Binaries for two platforms in one
// release are an error: no host could run them all.
func Inspect(dir string) (Needs, error) {
	var n Needs
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(dir, p)
		goos, arch, glibc := readBinary(f)
		if goos == "" {
			return nil
		}
		if n.OS == "" {
			n.OS, n.Arch, n.File = goos, arch, rel
		} else if n.OS != goos || n.Arch != arch {
			what := "architectures"
			if n.OS != goos {
				what = "operating systems"
			}
			return fmt.Errorf("the release mixes %s: %s is %s/%s, %s is %s/%s", what, n.File, n.OS, n.Arch, rel, goos, arch)
		}
		if CompareVersions(glibc, n.GLIBC) > 0 {
			n.GLIBC = glibc
		}
		return nil
	})
	if err != nil {
		return Needs{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	return n, nil
}

// readBinary returns the platform of a native binary, and for an ELF
// file the newest glibc version it needs; "" for other files.
func readBinary(f *os.File) (goos, arch, glibc string) {
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return "", "", ""
	}
	switch {
	case bytes.Equal(magic, []byte(elf.ELFMAG)):
		ef, err := elf.NewFile(f)
		if err != nil {
			return "", "", "" // not a well-formed ELF file; not ours to judge
		}
		arch = machines[ef.Machine]
		if arch == "" {
			arch = strings.ToLower(strings.TrimPrefix(ef.Machine.String(), "EM_"))
		}
		syms, _ := ef.ImportedSymbols()
		for _, s := range syms {
			if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && CompareVersions(v, glibc) > 0 {
				glibc = v
			}
		}
		return elfOS(ef), arch, glibc
	case isMachO(magic):
		mf, err := macho.NewFile(f)
		if err != nil {
			return "", "", ""
		}
		return "darwin", machoArch(mf.Cpu), ""
	case binary.BigEndian.Uint32(magic) == macho.MagicFat:
		// Also a Java class file's magic: only a well-formed universal
		// binary counts.
		ff, err := macho.NewFatFile(f)
		if err != nil || len(ff.Arches) == 0 {
			return "", "", ""
		}
		return "darwin", machoArch(ff.Arches[0].Cpu), ""
	}
	return "", "", ""
}

func isMachO(magic []byte) bool {
	for _, m := range []uint32{macho.Magic32, macho.Magic64} {
		if binary.LittleEndian.Uint32(magic) == m || binary.BigEndian.Uint32(magic) == m {
			return true
		}
	}
	return false
}

func machoArch(c macho.Cpu) string {
	if a := machoCPUs[c]; a != "" {
		return a
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "Cpu"))
}

// CompareVersions compares dotted numeric versions like 2.34 and 2.4;
// "" is older than anything.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" {
		return -1
	}
	if b == "" {
		return 1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
