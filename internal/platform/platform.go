// Package platform says where hoist runs and what it needs there. The
// operator's side (build, deploy, setup, every day-two verb) runs on
// macOS and Linux; the host side (hoist host, the edge proxy), the lab
// and the rootfs builder need Linux. Each of those checks Check first,
// which on another platform returns one line naming what to use
// instead; the code that calls Linux alone sits in *_linux.go files with
// stubs beside them, so that every package builds everywhere.
//
// The build tag nolinux makes a Linux build behave as another platform's
// would (Linux reports false, the stubs are built), so that the stubs'
// messages are tested on the Linux machines CI runs on.
package platform

import (
	"fmt"
	"runtime"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Feature is a part of hoist that needs Linux.
type Feature string

const (
	Lab           Feature = "lab"            // hoist lab, and infra.provider: lab
	RootfsBuilder Feature = "rootfs builder" // build.builder: rootfs
	Proxy         Feature = "proxy"          // hoist proxy run
	HostRole      Feature = "host"           // hoist host VERB
)

// Features are all of them, for tests and docs.
var Features = []Feature{Lab, RootfsBuilder, Proxy, HostRole}

// messages say, in one line each, what needs Linux and what to use
// instead; %s is this machine's GOOS/GOARCH.
var messages = map[Feature]string{
	Lab: "the lab needs Linux (systemd-nspawn, network namespaces), not %s: " +
		"run hoist lab on a Linux machine or VM, or deploy to hosts you reach over SSH",
	RootfsBuilder: "the rootfs builder needs Linux (debootstrap, systemd-nspawn), not %s: " +
		"use builder: container (Docker Desktop, OrbStack, colima or podman machine) or builder: remote",
	Proxy: "hoist proxy run is the edge proxy of a host and needs Linux, not %s: " +
		"hoist setup installs and starts it on your hosts",
	HostRole: "hoist host is hoist's side on a host and needs Linux, not %s: " +
		"hoist setup puts it on your hosts and runs it there over SSH",
}

// Message is f's one line on the platform goos/goarch.
func Message(f Feature, self string) string {
	m, ok := messages[f]
	if !ok {
		return fmt.Sprintf("%s needs Linux, not %s", f, self)
	}
	return fmt.Sprintf(m, self)
}

// Self is this hoist's platform, GOOS/GOARCH.
func Self() string { return runtime.GOOS + "/" + runtime.GOARCH }

// Check returns nil on Linux, else f's message as a user error (one
// line: it has no hint, the message says what to do).
func Check(f Feature) error {
	if Linux {
		return nil
	}
	return usererr.New("%s", Message(f, Self()))
}
