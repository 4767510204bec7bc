package host

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/internal/systemd"
	"github.com/hoistdev/hoist/internal/usererr"
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
	// Addr is where an OTP release's epmd and distribution port listen
	// (run.erlang.listen), and the host part of its node's name.
	Addr netip.Addr
}

// env is the port file's content for the release whose node is named
// node (without its host part).
func (p Ports) env(node string) []string {
	env := []string{"PORT=" + strconv.Itoa(p.HTTP)}
	if p.EPMD == 0 {
		return env
	}
	return append(env,
		"ERL_EPMD_PORT="+strconv.Itoa(p.EPMD),
		// epmd listens there (and on loopback, which it always adds).
		"ERL_EPMD_ADDRESS="+p.Addr.String(),
		// A long name with the address, not a short name with the
		// host's name: that may resolve to an address the node does not
		// listen on (Debian maps it to 127.0.1.1).
		"RELEASE_DISTRIBUTION=name",
		"RELEASE_NODE="+node+"@"+p.Addr.String(),
		// Read by erl itself, so relx releases honour it as mix's do;
		// ERL_ZFLAGS comes last on erl's command line, after vm.args.
		"ERL_ZFLAGS="+p.distFlags(),
	)
}

// distFlags bind the Erlang distribution's listener to p.Addr.
func (p Ports) distFlags() string {
	return "-kernel inet_dist_use_interface {" + strings.ReplaceAll(p.Addr.String(), ".", ",") + "}"
}

// readPorts reads release id's port file; zero Ports when it has none.
func (l Layout) readPorts(id string) Ports {
	env, err := readEnvFile(l.portFile(id))
	if err != nil {
		return Ports{}
	}
	return parsePorts(env)
}

// parsePorts reads Ports from a port file's lines.
func parsePorts(env []string) Ports {
	var p Ports
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "PORT":
			p.HTTP = n
		case "ERL_EPMD_PORT":
			p.EPMD = n
		case "ERL_EPMD_ADDRESS":
			p.Addr, _ = netip.ParseAddr(v)
		}
	}
	return p
}

func (l Layout) writePorts(id string, p Ports) error {
	if err := os.MkdirAll(l.Ports(), 0o755); err != nil {
		return fmt.Errorf("write ports of %s: %w", id, err)
	}
	env := p.env(systemd.NodeName(l.App, id))
	return writeFileAtomic(l.portFile(id), []byte(strings.Join(env, "\n")+"\n"), 0o644)
}

// startedAsNow reports whether release id started after the app's
// units, secrets and accessories' URLs last changed: its port file,
// written as it starts, is newer than each (each is written only when
// it changes).
func (l Layout) startedAsNow(id string) bool {
	started, err := os.Stat(l.portFile(id))
	if err != nil {
		return false
	}
	for _, p := range []string{l.EnvFile(), l.AccessoriesEnvFile(), l.CookieFile(), filepath.Join(UnitDir, systemd.TemplateName(l.App))} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // no secrets: none changed
		}
		if err != nil || !fi.ModTime().Before(started.ModTime()) {
			return false
		}
	}
	return true
}

// heldPort is the HTTP port running release id holds. A release started
// without the proxy has no port file and holds run.port.
func (l Layout) heldPort(id string, runPort int) int {
	if p := l.readPorts(id); p.HTTP != 0 {
		return p.HTTP
	}
	return runPort
}

// newPorts gives release id its ports, http and, for an OTP release, an
// epmd of its own listening on loopback, or in network when it is set
// (run.erlang.listen), and writes them to its port file.
func (l Layout) newPorts(id string, http int, network string) (Ports, error) {
	p := Ports{HTTP: http}
	if isOTPRelease(l.Release(id)) {
		if network != "" && !l.secretCookie() {
			// Each host made a cookie of its own: the nodes of two hosts
			// would not connect.
			return p, usererr.New("release %s is an Erlang node on the network %s, and the nodes of the app's hosts need one cookie, which this host has not been given", id, network).
				WithHint("make it a secret: hoist secrets gen " + cookieVar + ", then deploy")
		}
		var err error
		if p.Addr, err = listenAddr(network); err != nil {
			return p, err
		}
		if p.EPMD, err = l.epmdPort(id, p.Addr, http); err != nil {
			return p, err
		}
	}
	return p, l.writePorts(id, p)
}

// secretCookie reports whether the app's secrets (or, for someone's
// reasons, its accessories' file) set RELEASE_COOKIE, which wins over
// the cookie hoist made on this host.
func (l Layout) secretCookie() bool {
	for _, f := range []string{l.AccessoriesEnvFile(), l.EnvFile()} {
		env, _ := readEnvFile(f)
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == cookieVar && v != "" {
				return true
			}
		}
	}
	return false
}

// epmdPort picks the port of release id's epmd. On loopback any free
// port does. On a private network, nodes on other hosts look a node up
// through the epmd port they use themselves: it is derived from the
// release, so that the nodes of one release find each other.
func (l Layout) epmdPort(id string, addr netip.Addr, http int) (int, error) {
	if addr.IsLoopback() {
		return freePort(http, http+1)
	}
	port := clusterEPMDPort(l.App, id)
	if port == http || port == http+1 {
		return 0, fmt.Errorf("port %d, the epmd port of release %s on every host (run.erlang.listen), is run.port or the one after it", port, id)
	}
	// A release activated again while it runs holds it already.
	if l.readPorts(id).EPMD != port && !portFree(port) {
		return 0, fmt.Errorf("port %d, the epmd port of release %s on every host (run.erlang.listen), is taken on this host", port, id)
	}
	return port, nil
}

// clusterEPMDPort maps a release to a port in 20000-29999: below
// Linux's ephemeral ports (32768 and up), so that no outgoing
// connection holds it.
func clusterEPMDPort(app, id string) int {
	h := fnv.New32a()
	h.Write([]byte(app + "/" + id))
	return 20000 + int(h.Sum32()%10000)
}

// renewEPMD gives release id a new epmd port, if it has one on
// loopback: at boot the old one may have been taken meanwhile. On a
// private network the port is the release's own and stays.
func (l Layout) renewEPMD(id string) error {
	p := l.readPorts(id)
	if p.EPMD == 0 || (p.Addr.IsValid() && !p.Addr.IsLoopback()) {
		return nil
	}
	_, err := l.newPorts(id, p.HTTP, "")
	return err
}

// listenAddr is where an OTP release listens: 127.0.0.1 when network
// is "", else this host's address in network (run.erlang.listen).
func listenAddr(network string) (netip.Addr, error) {
	if network == "" {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	prefix, err := netip.ParsePrefix(network)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("run.erlang.listen %q: %w", network, err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list this host's addresses: %w", err)
	}
	return addrIn(prefix, addrs)
}

// addrIn returns the lowest of addrs inside network.
func addrIn(network netip.Prefix, addrs []net.Addr) (netip.Addr, error) {
	var in []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && network.Contains(ip.Unmap()) {
				in = append(in, ip.Unmap())
			}
		}
	}
	if len(in) == 0 {
		return netip.Addr{}, errors.New("this host has no address in " + network.String() + " (run.erlang.listen): name the private network the hosts share, or loopback")
	}
	slices.SortFunc(in, netip.Addr.Compare)
	return in[0], nil
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

// portFree reports whether no one listens on TCP port now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// claimPort refuses to start a release on port when another program
// listens there: the release could not bind it, and its health check
// would be answered by that program, switching the app to it.
func claimPort(ctx context.Context, port int) error {
	if portFree(port) {
		return nil
	}
	holder := portHolder(ctx, port)
	if holder == "" {
		holder = "another program"
	}
	return usererr.New("port %d is held by %s on this host: the release would not get it, and the health check would reach that program", port, holder).
		WithHint("stop what listens there, or give this app another run.port in hoist.yml (behind the proxy, a release uses run.port and run.port+1)")
}

// portHolder names what listens on TCP port, as ss(8) reports it, or ""
// when it cannot tell.
func portHolder(ctx context.Context, port int) string {
	out, err := exec.CommandContext(ctx, "ss", "-Hltnp", "sport = :"+strconv.Itoa(port)).Output()
	if err != nil {
		return ""
	}
	// users:(("python3",pid=812,fd=3))
	_, users, ok := strings.Cut(string(out), "users:((")
	if !ok {
		return ""
	}
	name, rest, _ := strings.Cut(users, ",")
	pid, _, _ := strings.Cut(strings.TrimPrefix(rest, "pid="), ",")
	return fmt.Sprintf("%s (pid %s)", strings.Trim(name, `"`), pid)
}
