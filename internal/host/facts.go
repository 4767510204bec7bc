package host

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// HostFacts describe what a host can run; setup records them and every
// upload is checked against them.
type HostFacts struct {
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	GLIBC string `json:"glibc,omitempty"` // like "2.36"; "" without glibc
}

// Facts reads this host's facts. The hoist binary runs here, so its own
// platform is the host's: setup refuses a binary of another one.
func Facts() HostFacts {
	f := HostFacts{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output(); err == nil {
		// "glibc 2.36"
		if v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "glibc "); ok {
			f.GLIBC = v
		}
	}
	return f
}

// RecordFacts writes this host's facts for later reads (status).
func RecordFacts(base string) (HostFacts, error) {
	f := Facts()
	b, _ := json.MarshalIndent(f, "", "  ") // plain struct: cannot fail
	if err := os.MkdirAll(filepath.Dir(FactsFile(base)), 0o755); err != nil {
		return f, fmt.Errorf("record facts: %w", err)
	}
	return f, writeFileAtomic(FactsFile(base), append(b, '\n'), 0o644)
}
