// Command wsidle measures WebSockets through a proxy. With -n it opens N
// WebSockets, holds them idle, and prints the resident memory of a
// process (the proxy, -pid) with none, half and all of them open. With
// -echo it times round trips of a small message over one WebSocket to
// each of -peers, taking turns, so that load from elsewhere on the
// machine hits every peer alike; a peer's address with wss:// in front
// is reached over TLS (no certificate check, no SNI: each proxy answers
// with its default certificate). The backend must echo raw frames back
// (bench/backend does, at /ws).
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "proxy address (-n)")
	host := flag.String("host", "bench.test", "Host header")
	n := flag.Int("n", 0, "idle WebSockets to hold")
	pid := flag.Int("pid", 0, "process whose resident memory to report")
	echo := flag.Int("echo", 0, "round trips to time over one WebSocket to each peer")
	peers := flag.String("peers", "proxy=127.0.0.1:18080", "name=address,... of the proxies to time (-echo)")
	flag.Parse()
	if *echo > 0 {
		if err := echoPeers(*peers, *host, *echo); err != nil {
			log.Fatal(err)
		}
	}
	if *n > 0 {
		hold(*addr, *host, *n, *pid)
	}
}

// echoPeers opens a WebSocket to each peer and times count round trips
// over each, in rounds that visit every peer once, in an order drawn
// anew each round (so that no peer always follows the same one, whose
// leftover work could slow it), after a warm-up of count/10 untimed. It
// prints "echo NAME P50_US P99_US" per peer.
func echoPeers(list, host string, count int) error {
	type peer struct {
		name string
		c    net.Conn
		rtts []time.Duration
	}
	var ps []*peer
	for nameAddr := range strings.SplitSeq(list, ",") {
		name, addr, ok := strings.Cut(nameAddr, "=")
		if !ok {
			return fmt.Errorf("peer %q: want name=address", nameAddr)
		}
		c, err := open(addr, host)
		if err != nil {
			return fmt.Errorf("websocket to %s: %w", name, err)
		}
		defer c.Close()
		ps = append(ps, &peer{name: name, c: c, rtts: make([]time.Duration, 0, count)})
	}
	warm := count / 10
	order := rand.New(rand.NewPCG(1, 2)) // the same orders in every run
	for i := range warm + count {
		for _, j := range order.Perm(len(ps)) {
			p := ps[j]
			d, err := roundTrip(p.c)
			if err != nil {
				return fmt.Errorf("echo through %s: %w", p.name, err)
			}
			if i >= warm {
				p.rtts = append(p.rtts, d)
			}
		}
	}
	for _, p := range ps {
		p50, p99 := percentiles(p.rtts)
		fmt.Printf("echo %s %.1f %.1f\n", p.name, us(p50), us(p99))
	}
	return nil
}

// echoFrame is a masked 5-byte text frame; the backend sends it back as
// it came.
var echoFrame = [...]byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}

// roundTrip times one message there and back.
func roundTrip(c net.Conn) (time.Duration, error) {
	var buf [len(echoFrame)]byte
	start := time.Now()
	if _, err := c.Write(echoFrame[:]); err != nil {
		return 0, err
	}
	if _, err := readFull(c, buf[:]); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// roundTrips prints the p50 and p99 of count round trips over c.
func roundTrips(c net.Conn, count int) {
	rtts := make([]time.Duration, 0, count)
	for range count {
		d, err := roundTrip(c)
		if err != nil {
			log.Fatal(err)
		}
		rtts = append(rtts, d)
	}
	p50, p99 := percentiles(rtts)
	fmt.Printf("echo_p50_us %.1f\necho_p99_us %.1f\n", us(p50), us(p99))
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func hold(addr, host string, n, pid int) {
	settle := func() float64 {
		time.Sleep(3 * time.Second) // the proxy's GC and scavenger settle
		return rss(pid)
	}
	fmt.Printf("rss0_mib %.1f\n", settle())
	conns := make([]net.Conn, 0, n)
	start := time.Now()
	for i := range n {
		c, err := open(addr, host)
		if err != nil {
			log.Fatalf("websocket %d: %v", i, err)
		}
		conns = append(conns, c)
		if i+1 == n/2 {
			fmt.Printf("half %d\nrss_half_mib %.1f\n", n/2, settle())
		}
	}
	opened := time.Since(start)
	fmt.Printf("open %d\nopen_seconds %.1f\nrss_mib %.1f\n", len(conns), opened.Seconds(), settle())
	// They are still open and answer.
	if c := conns[len(conns)-1]; c != nil {
		roundTrips(c, 100)
	}
	for _, c := range conns {
		c.Close()
	}
}

func open(addr, host string) (net.Conn, error) {
	addr, secure := strings.CutPrefix(addr, "wss://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if secure {
		// Loopback, the proxies' own test certificates: nothing to check.
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 101 {
		c.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("unexpected bytes after the handshake")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(v, "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}
