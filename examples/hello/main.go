// Command hello is the smallest app hoist deploys: GET / answers with the
// release that serves it, GET /up is the health check, GET /client says
// who the app takes the client to be. With FORCE_SSL=1 it redirects what
// did not come over HTTPS, as Phoenix's force_ssl does behind a proxy.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	release := os.Getenv("HOIST_RELEASE")
	// STARTUP_DELAY (like "3s") plays an app that takes a while to boot.
	if d, err := time.ParseDuration(os.Getenv("STARTUP_DELAY")); err == nil {
		time.Sleep(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from release %s\n", release)
	})
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// GET /client: the client's address as the app sees it (the first of
	// X-Forwarded-For, which hoist's proxy keeps only from the proxies it
	// trusts, else the peer's) and the scheme it came in with.
	mux.HandleFunc("GET /client", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client %s proto %s\n", clientAddr(r), scheme(r))
	})
	// GET /ws is a WebSocket that echoes text messages, prefixed with the
	// release, for the proxy's tests and demos.
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { echo(w, r, release) })
	var h http.Handler = mux
	if os.Getenv("FORCE_SSL") == "1" {
		h = forceSSL(mux)
	}
	srv := &http.Server{Addr: ":" + port, Handler: h, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("hello %s listening on :%s", release, port)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// forceSSL redirects a request that did not come over HTTPS to it, as
// Phoenix's force_ssl with rewrite_on: [:x_forwarded_proto] does: behind
// a proxy that says http, or says nothing, the redirect never ends. The
// health check is left alone, as /up would be excluded.
func forceSSL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scheme(r) != "https" && r.URL.Path != "/up" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func scheme(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func clientAddr(r *http.Request) string {
	if f := r.Header.Get("X-Forwarded-For"); f != "" {
		first, _, _ := strings.Cut(f, ",")
		return strings.TrimSpace(first)
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// echo is a minimal WebSocket (RFC 6455) echo server: enough for text
// frames up to 64 KiB; the standard library has no WebSocket.
func echo(w http.ResponseWriter, r *http.Request, release string) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		http.Error(w, "not a WebSocket request", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(sum[:]))
	brw.Flush()
	for {
		op, msg, err := readFrame(brw.Reader)
		if err != nil || op == 0x8 {
			return
		}
		if op == 0x1 {
			writeFrame(conn, []byte(release+": "+string(msg)))
		}
	}
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		return 0, nil, fmt.Errorf("frame too large")
	}
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return 0, nil, err
	}
	for i := range msg {
		msg[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, msg, nil
}

func writeFrame(c net.Conn, msg []byte) error {
	h := []byte{0x81, byte(len(msg))}
	if len(msg) >= 126 {
		h = []byte{0x81, 126, byte(len(msg) >> 8), byte(len(msg))}
	}
	_, err := c.Write(append(h, msg...))
	return err
}
