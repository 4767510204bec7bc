package host

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Ports are what hoist gave a release when it started it. They are kept
// in its port file, which its unit reads as an EnvironmentFile and exec
// reads too, so that a command run beside the release sees the same.
type Ports struct {
	// HTTP is the release's PORT: run.port, or behind the proxy the one
	// of run.port and run.port+1 that the release beside it does not hold.
	HTTP int
	// EPMD is the port of an OTP release's own epmd (ERL_EPMD_PORT), 0
	// for other releases. The first node on a host starts epmd in its
	// unit and the others register with it; when that unit stops, epmd
	// dies with it and the others can no longer be found by name.
	EPMD int
}

func (p Ports) env() []string {
	env := []string{"PORT=" + strconv.Itoa(p.HTTP)}
	if p.EPMD != 0 {
		env = append(env, "ERL_EPMD_PORT="+strconv.Itoa(p.EPMD))
	}
	return env
}

// readPorts reads release id's port file; zero Ports when it has none.
func (l Layout) readPorts(id string) Ports {
	env, err := readEnvFile(l.portFile(id))
	if err != nil {
		return Ports{}
	}
	var p Ports
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "PORT":
			p.HTTP = n
		case "ERL_EPMD_PORT":
			p.EPMD = n
		}
	}
	return p
}

func (l Layout) writePorts(id string, p Ports) error {
	if err := os.MkdirAll(l.Ports(), 0o755); err != nil {
		return fmt.Errorf("write ports of %s: %w", id, err)
	}
	return writeFileAtomic(l.portFile(id), []byte(strings.Join(p.env(), "\n")+"\n"), 0o644)
}

// heldPort is the HTTP port running release id holds. A release started
// without the proxy has no port file and holds run.port.
func (l Layout) heldPort(id string, runPort int) int {
	if p := l.readPorts(id); p.HTTP != 0 {
		return p.HTTP
	}
	return runPort
}

// newPorts gives release id its ports, http and, for an OTP release, a
// free port for its epmd, and writes them to its port file.
func (l Layout) newPorts(id string, http int) (Ports, error) {
	p := Ports{HTTP: http}
	if isOTPRelease(l.Release(id)) {
		var err error
		if p.EPMD, err = freePort(http, http+1); err != nil {
			return p, err
		}
	}
	return p, l.writePorts(id, p)
}

// renewEPMD gives release id a new epmd port, if it has one: at boot the
// old one may have been taken meanwhile.
func (l Layout) renewEPMD(id string) error {
	p := l.readPorts(id)
	if p.EPMD == 0 {
		return nil
	}
	_, err := l.newPorts(id, p.HTTP)
	return err
}

// isOTPRelease reports whether dir holds an Erlang/OTP release (mix
// release, relx): those have releases/start_erl.data.
func isOTPRelease(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "releases", "start_erl.data"))
	return err == nil
}

// freePort returns a TCP port no one listens on now, other than avoid.
func freePort(avoid ...int) (int, error) {
	for range 10 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !slices.Contains(avoid, port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port: none in 10 tries")
}
