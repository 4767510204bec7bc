package accessory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// PortError says that the accessory cannot have its address and port.
type PortError struct {
	Name, Addr string
	Port       int
	// Holder names the program that holds the port, when known.
	Holder string
	Err    error
}

func (e *PortError) Error() string {
	if errors.Is(e.Err, syscall.EADDRNOTAVAIL) {
		return fmt.Sprintf("accessory %s: this host has no address %s to listen on: set listen to one of its private addresses", e.Name, e.Addr)
	}
	who := "another program"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("accessory %s: port %d on %s is taken by %s; nothing was changed: set accessories.%s.port to a free port, or stop what holds it", e.Name, e.Port, e.Addr, who, e.Name)
}

func (e *PortError) Unwrap() error { return e.Err }

// checkPort refuses an address and port the accessory cannot listen on:
// another program's, or an address the host does not have. A port its
// own unit holds (owns says which) is its own.
func checkPort(ctx context.Context, s *hostproto.AccessorySpec, owns func(s *hostproto.AccessorySpec, unit string) bool) error {
	l, err := net.Listen("tcp", net.JoinHostPort(s.Listen, strconv.Itoa(s.Port)))
	if err == nil {
		return l.Close()
	}
	pe := &PortError{Name: s.Name, Addr: s.Listen, Port: s.Port, Err: err}
	if errors.Is(err, syscall.EADDRINUSE) {
		pe.Holder = portHolder(ctx, s.Port)
		if owns(s, pe.Holder) {
			return nil // the accessory itself, already running
		}
	}
	return pe
}

var ssUser = regexp.MustCompile(`users:\(\("([^"]+)",pid=(\d+)`)

// portHolder names who listens on TCP port: its unit when systemd runs
// it, else the program and its pid; "" when ss cannot tell.
func portHolder(ctx context.Context, port int) string {
	out, err := exec.CommandContext(ctx, "ss", "-Hltnp", "sport = :"+strconv.Itoa(port)).Output()
	if err != nil {
		return ""
	}
	m := ssUser.FindSubmatch(out)
	if m == nil {
		return ""
	}
	pid, _ := strconv.Atoi(string(m[2]))
	if unit := unitOf(pid); unit != "" {
		return unit
	}
	return fmt.Sprintf("%s (pid %d)", m[1], pid)
}
