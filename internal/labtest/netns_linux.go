package labtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a thread that has entered network namespace ns
// (by name, under /run/netns; "" for this machine's own). Sockets made
// by fn stay in ns after it returns; the thread is not reused.
func InNetns(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, and no
		// other goroutine runs in the namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen makes sure something accepts TCP connections on each of ports
// in ns: a listener of the test's, or what listens there already (sshd,
// the proxy). The test's are closed when it ends.
func Listen(t testing.TB, ns string, ports ...int) {
	t.Helper()
	for _, p := range ports {
		var ln net.Listener
		err := InNetns(ns, func() error {
			var err error
			ln, err = net.Listen("tcp4", ":"+strconv.Itoa(p))
			return err
		})
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			t.Fatalf("listen on %d in %s: %v", p, ns, err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close() })
	}
}

// Answers reports whether addr:port takes a TCP connection from ns
// within timeout. A refusal counts as an answer too: it came through.
// Only silence is a closed port, as a firewall that drops makes it.
func Answers(ns, addr string, port int, timeout time.Duration) (bool, error) {
	var ok bool
	err := InNetns(ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", net.JoinHostPort(addr, strconv.Itoa(port)))
		switch {
		case err == nil:
			c.Close()
			ok = true
		case errors.Is(err, syscall.ECONNREFUSED):
			ok = true
		case timedOut(err) || errors.Is(err, syscall.EHOSTUNREACH):
		default:
			return err
		}
		return nil
	})
	return ok, err
}

// Probe is one vantage point's look at a host: Key names it in the
// results, NS is the namespace it looks from ("" for this machine).
type Probe struct {
	Key, NS, Addr string
}

// Survey tries each port of each probe, 16 at a time, and returns what
// answered (see Answers) by key, sorted: a key with nothing open maps
// to an empty list.
func Survey(t testing.TB, probes []Probe, ports []int, timeout time.Duration) map[string][]int {
	t.Helper()
	got := make(map[string][]int, len(probes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, pr := range probes {
		got[pr.Key] = []int{}
		for _, p := range ports {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				ok, err := Answers(pr.NS, pr.Addr, p, timeout)
				if err != nil {
					t.Errorf("%s port %d: %v", pr.Key, p, err)
				}
				if ok {
					mu.Lock()
					got[pr.Key] = append(got[pr.Key], p)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for k := range got {
		slices.Sort(got[k])
		t.Logf("%s: %v", k, got[k])
	}
	return got
}

// Stranger makes a network namespace on bridge with address addr/24, a
// machine on the lab's network that is neither a host nor this one: the
// internet, as the hosts see it. It is removed when the test ends.
func Stranger(t testing.TB, bridge, name, addr string) string {
	t.Helper()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", name).Run()
	h := fnv.New32a()
	h.Write([]byte(name))
	veth := "hs" + strconv.FormatUint(uint64(h.Sum32()), 36)
	exec.Command("ip", "link", "del", veth).Run()
	ip("netns", "add", name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", name).Run()
		exec.Command("ip", "link", "del", veth).Run()
	})
	ip("link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	ip("link", "set", veth, "master", bridge, "up")
	ip("link", "set", veth+"p", "netns", name)
	ip("-n", name, "link", "set", veth+"p", "name", "eth0")
	ip("-n", name, "addr", "add", addr+"/24", "dev", "eth0")
	ip("-n", name, "link", "set", "eth0", "up")
	ip("-n", name, "link", "set", "lo", "up")
	return name
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) || (errors.As(err, &ne) && ne.Timeout())
}
