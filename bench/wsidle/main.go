// Command wsidle opens N WebSockets through a proxy, holds them idle, and
// prints the resident memory of a process (the proxy) while they are
// open, and the round trip of one small echoed message.
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
	n := flag.Int("n", 10000, "WebSockets to hold")
	pid := flag.Int("pid", 0, "process whose resident memory to report")
	flag.Parse()
	conns := make([]net.Conn, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := open(*addr, *host)
		if err != nil {
			log.Fatalf("websocket %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second) // let the proxy settle
	fmt.Printf("idle websockets: %d, proxy RSS: %.1f MiB\n", len(conns), rss(*pid))
	// Round trips of a masked 5-byte text frame over the first connection.
	var rtts []time.Duration
	frame := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
	buf := make([]byte, len(frame))
	for i := 0; i < 2000; i++ {
		start := time.Now()
		if _, err := conns[0].Write(frame); err != nil {
			log.Fatal(err)
		}
		if _, err := readFull(conns[0], buf); err != nil {
			log.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	fmt.Printf("websocket echo round trip: p50 %s, p99 %s\n", rtts[len(rtts)/2], rtts[len(rtts)*99/100])
	for _, c := range conns {
		c.Close()
	}
}

func open(addr, host string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 101 {
		c.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
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
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}
