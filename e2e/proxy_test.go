//go:build lab

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// TestZeroDowntimeThroughProxy sends requests without pause and holds
// WebSockets open through five deploys (one of them a release that never
// turns healthy) and a rollback, on two hosts behind hoist's proxy. No
// request may fail, every WebSocket must end with 1001 Going Away or
// still be open, and the unhealthy release must never answer.
func TestZeroDowntimeThroughProxy(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "zdt", 3200, hosts, "proxy:\n  hosts: [zdt.test]\n  drain_timeout: 2s\n")
	a.edit(t, "hoist.yml", "  timeout: 15s\n", "  timeout: 6s\n")
	mustHoist(t, a.dir, "setup")
	r1 := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))

	var (
		mu         sync.Mutex
		wsGoAway   atomic.Int64
		wsAbnormal []string
	)
	tr := startTraffic(t, hosts, viaProxy("zdt.test"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range hosts {
		// A LiveView-like client: it holds a WebSocket, and reconnects
		// when told to go away.
		wg.Go(func() {
			holdWebSockets(h, "zdt.test", stop, &wsGoAway, func(s string) {
				mu.Lock()
				wsAbnormal = append(wsAbnormal, s)
				mu.Unlock()
			})
		})
	}

	var bad string
	ids := []string{r1}
	for i := 1; i <= 5; i++ {
		if i == 3 {
			a.edit(t, "main.go", `fmt.Fprintln(w, "ok")`, `w.WriteHeader(500)`)
			stdout, stderr, err := hoist(t.Context(), a.dir, "deploy")
			if err == nil {
				t.Fatalf("deploy of an unhealthy release succeeded: %s", stdout)
			}
			for _, line := range strings.Split(stderr, "\n") {
				if strings.HasPrefix(line, "built release ") {
					bad = strings.Fields(line)[2]
				}
			}
			a.edit(t, "main.go", `w.WriteHeader(500)`, `fmt.Fprintln(w, "ok")`)
			continue
		}
		a.change(t)
		ids = append(ids, strings.TrimSpace(mustHoist(t, a.dir, "deploy")))
	}
	mustHoist(t, a.dir, "rollback")
	back := ids[len(ids)-2]
	// Traffic goes on a while after the rollback, to the release rolled
	// back to.
	n := tr.answers(back)
	waittest.Within(t, 30*time.Second, "20 answers from "+back+" after the rollback", func() bool { return tr.answers(back) >= n+20 })
	close(stop)
	wg.Wait()
	tr.finish()

	if bad == "" {
		t.Error("could not tell which release failed")
	}
	tr.check(t, 100)
	if n := tr.answers(bad); n != 0 {
		t.Errorf("the unhealthy release %s answered %d requests", bad, n)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d WebSockets closed with 1001", wsGoAway.Load())
	if len(wsAbnormal) != 0 {
		t.Errorf("WebSockets ended abnormally: %v", wsAbnormal)
	}
	if wsGoAway.Load() < 4 {
		t.Errorf("too little traffic to judge: %d WebSocket hand-overs", wsGoAway.Load())
	}
	for _, h := range hosts {
		req, _ := http.NewRequest("GET", "http://"+h+"/", nil)
		req.Host = "zdt.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(body)); got != "hello from release "+back {
			t.Errorf("%s serves %q after the rollback, want %s", h, got, back)
		}
	}
}

// holdWebSocket opens a WebSocket through the proxy at addr:80 and holds
// it until the server closes it (returning the close code) or stop.
func holdWebSocket(addr, host string, stop <-chan struct{}) (int, error) {
	conn, err := net.DialTimeout("tcp", addr+":80", 5*time.Second)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return -1, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return -1, fmt.Errorf("upgrade answered %s", resp.Status)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
			conn.SetReadDeadline(time.Now())
		case <-done:
		}
	}()
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			select {
			case <-stop:
				return 0, nil
			default:
				return -1, fmt.Errorf("connection lost without a close frame: %w", err)
			}
		}
		payload := make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(br, payload); err != nil {
			return -1, err
		}
		if h[0]&0x0f == 0x8 {
			if len(payload) < 2 {
				return 1005, nil
			}
			return int(payload[0])<<8 | int(payload[1]), nil
		}
	}
}
