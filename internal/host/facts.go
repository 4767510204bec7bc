package host

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// Facts reads this host's facts. The hoist binary runs here, so its own
// platform is the host's: setup refuses a binary of another one.
func Facts() hostproto.HostFacts {
	f := hostproto.HostFacts{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output(); err == nil {
		// "glibc 2.36"
		if v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "glibc "); ok {
			f.GLIBC = v
		}
	}
	return f
}

// RecordFacts writes this host's facts for later reads (status).
func RecordFacts(base string) (hostproto.HostFacts, error) {
	f := Facts()
	b, _ := json.MarshalIndent(f, "", "  ") // plain struct: cannot fail
	if err := os.MkdirAll(filepath.Dir(FactsFile(base)), 0o755); err != nil {
		return f, fmt.Errorf("record facts: %w", err)
	}
	return f, writeFileAtomic(FactsFile(base), append(b, '\n'), 0o644)
}
