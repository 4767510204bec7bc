package release

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Needs is what a release's binaries require of a host, read from their
// ELF headers: the architecture they are built for and the newest glibc
// symbol version they link against.
type Needs struct {
	Arch  string // GOARCH name; "" when the release holds no ELF binary
	GLIBC string // like "2.34"; "" when nothing links glibc
}

var machines = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
	elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
}

// Inspect reads the ELF files under dir. Binaries for two architectures in
// one release are an error: no host could run them all.
func Inspect(dir string) (Needs, error) {
	var n Needs
	var archFile string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		magic := make([]byte, 4)
		if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
			return nil
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			return nil // not a well-formed ELF file; not ours to judge
		}
		arch := machines[ef.Machine]
		if arch == "" {
			arch = strings.ToLower(strings.TrimPrefix(ef.Machine.String(), "EM_"))
		}
		rel, _ := filepath.Rel(dir, p)
		if n.Arch == "" {
			n.Arch, archFile = arch, rel
		} else if n.Arch != arch {
			return fmt.Errorf("the release mixes architectures: %s is %s, %s is %s", archFile, n.Arch, rel, arch)
		}
		syms, _ := ef.ImportedSymbols()
		for _, s := range syms {
			if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && CompareVersions(v, n.GLIBC) > 0 {
				n.GLIBC = v
			}
		}
		return nil
	})
	if err != nil {
		return Needs{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	return n, nil
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
