// Command wsidle measures WebSockets through a proxy. With -n it opens N
// WebSockets, holds them idle, and prints the resident memory of a
// process (the proxy, -pid) with none, half and all of them open. With
// -echo it times round trips of a small message over one WebSocket.
// The backend must echo raw frames back (bench/backend does, at /ws).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "proxy address")
	host := flag.String("host", "bench.test", "Host header")
	n := flag.Int("n", 0, "idle WebSockets to hold")
	pid := flag.Int("pid", 0, "process whose resident memory to report")
	echo := flag.Int("echo", 0, "round trips to time over one WebSocket")
	flag.Parse()
	if *echo > 0 {
		c, err := open(*addr, *host)
		if err != nil {
			log.Fatalf("websocket: %v", err)
		}
		roundTrips(c, *echo)
		c.Close()
	}
	if *n > 0 {
		hold(*addr, *host, *n, *pid)
	}
}

// roundTrips prints the p50 and p99 round trip of a masked 5-byte frame.
func roundTrips(c net.Conn, count int) {
	rtts := make([]time.Duration, 0, count)
	frame := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
	buf := make([]byte, len(frame))
	for range count {
		start := time.Now()
		if _, err := c.Write(frame); err != nil {
			log.Fatal(err)
		}
		if _, err := readFull(c, buf); err != nil {
			log.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	fmt.Printf("echo_p50_us %.1f\necho_p99_us %.1f\n", us(rtts[len(rtts)/2]), us(rtts[len(rtts)*99/100]))
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
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
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
