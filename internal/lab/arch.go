package lab

import (
	"os"
	"runtime"
	"strings"

	"github.com/hoistdev/hoist/internal/usererr"
)

// qemuBinfmt names the binfmt_misc entry that runs an architecture's
// programs under qemu-user, for the architectures a lab host can have.
var qemuBinfmt = map[string]string{"amd64": "qemu-x86_64", "arm64": "qemu-aarch64"}

// binfmtDir is where the kernel lists its binfmt_misc entries.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// foreign reports whether the hosts are of another architecture than
// this machine.
func (o *Options) foreign() bool { return o.Arch != "" && o.Arch != runtime.GOARCH }

// pickArch settles the hosts' architecture: the lab's own once it has
// hosts, else Options.Arch, else this machine's; another needs emulation.
func (o *Options) pickArch(st *state) error {
	switch {
	case len(st.Hosts) > 0 && o.Arch != "" && archOr(st.Arch) != o.Arch:
		return usererr.New("lab %s holds %s hosts, not %s", o.Name, archOr(st.Arch), o.Arch).
			WithHint("`hoist lab down --name %s` removes it, or give the %s hosts a lab of their own (--name)", o.Name, o.Arch)
	case len(st.Hosts) > 0:
		o.Arch = st.Arch
	}
	if !o.foreign() {
		o.Arch = ""
		return nil
	}
	if _, ok := qemuBinfmt[o.Arch]; !ok {
		return usererr.New("lab hosts can be amd64 or arm64, not %s", o.Arch)
	}
	if o.UserData != nil {
		return usererr.New("hosts from the cloud image are of this machine's architecture, not %s", o.Arch)
	}
	return checkEmulation(o.Arch)
}

func archOr(a string) string {
	if a == "" {
		return runtime.GOARCH
	}
	return a
}

// checkEmulation checks that the kernel runs arch's programs under qemu,
// with the interpreter opened when registered (flag F), as it must be
// for it to work inside a machine's own root.
func checkEmulation(arch string) error {
	name := qemuBinfmt[arch]
	b, err := os.ReadFile(binfmtDir + "/" + name)
	hint := "install qemu-user-static and binfmt-support (apt-get install qemu-user-static binfmt-support); where binfmt_misc is not mounted, mount it (mount -t binfmt_misc binfmt_misc " + binfmtDir + ") and run update-binfmts --enable " + name
	if err != nil {
		return usererr.New("%s lab hosts run under qemu-user emulation, which this machine lacks (no %s/%s)", arch, binfmtDir, name).WithHint("%s", hint)
	}
	s := string(b)
	if !strings.HasPrefix(s, "enabled") {
		return usererr.New("%s lab hosts run under qemu-user emulation: %s/%s is disabled", arch, binfmtDir, name).WithHint("%s", hint)
	}
	for _, line := range strings.Split(s, "\n") {
		if flags, ok := strings.CutPrefix(line, "flags: "); ok && strings.Contains(flags, "F") {
			return nil
		}
	}
	return usererr.New("%s lab hosts need %s registered with the F flag (qemu-user-static's own entry has it)", arch, name).WithHint("%s", hint)
}
