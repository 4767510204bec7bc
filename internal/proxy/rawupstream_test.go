package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// rawUpstream is an upstream driven byte by byte: it parses each request
// that arrives (net/http's parser decides where one ends), records it
// exactly as it came, and answers with the bytes its script gives. GET
// /up (the health check) answers 200 and is not recorded.
type rawUpstream struct {
	address string
	script  func(req *http.Request) []byte
	// after, if set, is written once the answer is, and then signalled
	// on its channel: bytes that follow an answer later.
	after func(req *http.Request) ([]byte, chan<- struct{})

	mu    sync.Mutex
	reqs  []recordedRequest
	conns int // connections that carried a recorded request
	seen  chan struct{}
}

// recordedRequest is one request as the upstream got it.
type recordedRequest struct {
	Method, Target string
	Header         http.Header
	Body           string
	Raw            string // the bytes on the wire, head and body
}

func newRawUpstream(t testing.TB, script func(*http.Request) []byte) *rawUpstream {
	t.Helper()
	u := &rawUpstream{script: script, seen: make(chan struct{}, 64)}
	u.address = serveTCP(t, u.serve)
	return u
}

func (u *rawUpstream) addr() string { return u.address }

// serveTCP listens on loopback until the test ends, and runs serve on
// each connection in a goroutine of its own. It returns the address.
func serveTCP(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	counted := false
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		// What the parser consumed is this request: the rest of raw is
		// already the next one's.
		n := raw.Len() - br.Buffered()
		wire := string(raw.Next(n))
		if req.URL.Path == "/up" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		u.mu.Lock()
		if !counted {
			counted = true
			u.conns++
		}
		u.reqs = append(u.reqs, recordedRequest{Method: req.Method, Target: req.RequestURI, Header: req.Header, Body: string(body), Raw: wire})
		u.mu.Unlock()
		select {
		case u.seen <- struct{}{}:
		default:
		}
		if _, err := c.Write(u.script(req)); err != nil {
			return
		}
		if u.after != nil {
			if b, done := u.after(req); done != nil {
				c.Write(b)
				close(done)
			}
		}
	}
}

func (u *rawUpstream) requests() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.reqs...)
}

func (u *rawUpstream) connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// answer is a plain upstream answer with body.
func answer(body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}
