package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// WebSockets (and other HTTP/1.1 upgrades) are proxied by hand rather
// than by httputil.ReverseProxy, for three reasons. A drain must be able
// to close one cleanly: each direction's bytes pass through a small
// frame scanner, so a close frame is written between frames, never
// inside one. An idle WebSocket must cost little: after the handshake
// the handler returns, two goroutines relay the bytes, and they wait for
// data without holding a buffer (a buffer is borrowed from a pool only
// while bytes are being moved). And a round trip (a LiveView
// interaction) must be quick: on plain sockets the relay reads and
// writes with raw system calls (see rawSocket).

// closeGrace is how long a closing WebSocket waits for the client's own
// close frame (or for a frame in progress to end) before the
// connections are closed anyway.
const closeGrace = time.Second

// closeGoingAway is a server-to-client close frame (unmasked) with
// status 1001, Going Away: the client should reconnect.
var closeGoingAway = []byte{0x88, 0x02, 0x03, 0xe9}

// maskedGoingAway is the same close frame as a client sends it (masked),
// for the upstream side.
func maskedGoingAway() []byte {
	k := rand.Uint32()
	m := [4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
	return []byte{0x88, 0x82, m[0], m[1], m[2], m[3], 0x03 ^ m[0], 0xe9 ^ m[1]}
}

func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

var writerPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serveUpgrade proxies an upgrade request: the handshake to u, then, if
// u switches protocols, a relay registered with u until either side
// closes or a drain ends it.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request, e *entry, u *upstream) {
	proto := r.Header.Get("Upgrade")
	ws := strings.EqualFold(proto, "websocket")
	back, err := dialer.DialContext(r.Context(), "tcp", u.addr)
	if err != nil {
		s.upstreamError(w, r, err)
		return
	}
	h := r.Header.Clone()
	headers.StripHop(h)
	s.trust.Forward(h, r)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{proto}
	buf := writerPool.Get().(*bytes.Buffer)
	buf.Reset()
	buf.WriteString(r.Method + " " + r.URL.RequestURI() + " HTTP/1.1\r\nHost: " + r.Host + "\r\n")
	h.Write(buf)
	buf.WriteString("\r\n")
	if s.opts.UpstreamHeaderTimeout > 0 {
		back.SetDeadline(time.Now().Add(s.opts.UpstreamHeaderTimeout))
	}
	_, err = back.Write(buf.Bytes())
	writerPool.Put(buf)
	if err != nil {
		back.Close()
		s.upstreamError(w, r, err)
		return
	}
	br := bufio.NewReaderSize(back, 1024)
	resp, err := http.ReadResponse(br, r)
	if err != nil {
		back.Close()
		s.upstreamError(w, r, err)
		return
	}
	back.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused: pass the answer on, as for any request.
		defer back.Close()
		defer resp.Body.Close()
		headers.StripHop(resp.Header)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		b := s.buffers.Get()
		io.CopyBuffer(w, resp.Body, b)
		s.buffers.Put(b)
		return
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), proto) {
		back.Close()
		page(w, http.StatusBadGateway)
		return
	}
	client, crw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		back.Close()
		page(w, http.StatusInternalServerError)
		return
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.status = http.StatusSwitchingProtocols
	}
	// The 101 answer to the client, then whatever either side sent
	// after its head.
	rh := resp.Header.Clone()
	headers.StripHop(rh)
	out := writerPool.Get().(*bytes.Buffer)
	out.Reset()
	out.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + resp.Header.Get("Upgrade") + "\r\n")
	rh.Write(out)
	out.WriteString("\r\n")
	_, err = client.Write(out.Bytes())
	writerPool.Put(out)
	if err != nil {
		client.Close()
		back.Close()
		return
	}
	c := newWSConn(client, back, u, e.m, ws, s.opts.WriteTimeout)
	var early [2][]byte
	if n := br.Buffered(); n > 0 {
		early[toClient], _ = br.Peek(n)
		early[toClient] = bytes.Clone(early[toClient])
	}
	if n := crw.Reader.Buffered(); n > 0 {
		early[toBackend], _ = crw.Reader.Peek(n)
		early[toBackend] = bytes.Clone(early[toBackend])
	}
	e.m.websockets.Add(1)
	live := u.register(c)
	go c.pump(toClient, early[toClient])
	go c.pump(toBackend, early[toBackend])
	if !live {
		go c.goAway()
	}
}

const (
	toClient  = 0
	toBackend = 1
)

// wsConn is one proxied upgraded connection: the client's side and the
// upstream's, and the state of each direction.
type wsConn struct {
	client, back net.Conn
	up           *upstream
	m            *appMetrics
	websocket    bool

	dirs [2]direction
	once sync.Once
	done chan struct{} // closed by close
}

// newWSConn relays between client and back. A side that stops reading
// is cut off once a write to it has made no progress for writeTimeout,
// so that it cannot hold the other side's goroutine and the WebSocket
// forever.
func newWSConn(client, back net.Conn, u *upstream, m *appMetrics, websocket bool, writeTimeout time.Duration) *wsConn {
	c := &wsConn{client: client, back: back, up: u, m: m, websocket: websocket, done: make(chan struct{})}
	c.dirs[toClient].init(client, closeGoingAway, writeTimeout)
	c.dirs[toBackend].init(back, maskedGoingAway(), writeTimeout)
	return c
}

// direction is the bytes flowing to one side: writes to dst are
// serialised with the close frame, which goes in between two frames.
type direction struct {
	mu         sync.Mutex
	dst        net.Conn
	raw        syscall.RawConn // dst's socket, if rawSocket allows it
	scan       frameScanner
	closeFrame []byte
	want       bool // a close frame is to be sent at the next frame boundary
	sent       bool // it was: nothing more is forwarded this way

	// What write has left to write, and how it ended; writeRaw, made
	// once, writes it, so that a write allocates nothing.
	out      []byte
	outErr   error
	writeRaw func(fd uintptr) bool
	// timeout bounds a raw write that waits for dst to take more;
	// waiting is set while such a deadline is on dst.
	timeout time.Duration
	waiting bool
}

func (d *direction) init(dst net.Conn, closeFrame []byte, timeout time.Duration) {
	d.dst, d.closeFrame, d.timeout = dst, closeFrame, timeout
	if d.raw = rawSocket(dst); d.raw != nil {
		d.writeRaw = d.writeOut
	} else if timeout > 0 {
		d.dst = &progressConn{Conn: dst, timeout: timeout}
	}
}

// write writes b whole to dst; d.mu is held.
func (d *direction) write(b []byte) error {
	if d.raw == nil {
		_, err := d.dst.Write(b)
		return err
	}
	d.out, d.outErr = b, nil
	err := d.raw.Write(d.writeRaw)
	d.out = nil
	if d.waiting {
		// The deadline was only for this write's wait.
		d.waiting = false
		d.dst.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		return err
	}
	return d.outErr
}

// writeOut is RawConn.Write's function: it writes d.out until done, or
// until the socket is full (false: wait until it can take more).
func (d *direction) writeOut(fd uintptr) bool {
	for len(d.out) > 0 {
		n, err := sysWrite(fd, d.out)
		switch err {
		case nil:
			d.out = d.out[n:]
		case syscall.EAGAIN:
			// The peer is not reading: wait, but not forever. A deadline
			// is set only here, so a write that goes straight out costs
			// no timer.
			if d.timeout > 0 && !d.waiting {
				d.waiting = true
				d.dst.SetWriteDeadline(time.Now().Add(d.timeout))
			}
			return false
		default:
			d.outErr = err
			return true
		}
	}
	return true
}

// register adds c to u's WebSockets, unless u's drain already closed
// them (then the caller closes c at once).
func (u *upstream) register(c *wsConn) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ws[c] = struct{}{}
	return !u.closedWS
}

// relayBuffers lend the relay its buffers only while bytes move.
var relayBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// pump moves the bytes for dir from the other side's connection until
// it ends or the connection is closed, then closes both sides.
func (c *wsConn) pump(dir int, early []byte) {
	defer c.close()
	if len(early) > 0 {
		if c.forward(dir, early) != nil {
			return
		}
	}
	from := &c.dirs[1-dir]
	if from.raw != nil {
		c.pumpRaw(dir, from.raw)
	} else {
		c.pumpConn(dir, from.dst)
	}
	if dir == toClient {
		c.awaitClientAnswer()
	}
}

// awaitClientAnswer waits, once the upstream has ended, for the client's
// answer to a close frame the proxy sent it (the other pump reads it and
// closes c), up to closeGrace. Closing the client's socket with that
// answer unread would reset the connection instead of ending it.
func (c *wsConn) awaitClientAnswer() {
	d := &c.dirs[toClient]
	d.mu.Lock()
	sent := d.sent
	d.mu.Unlock()
	if !c.websocket || !sent {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

// pumpRaw moves bytes from a socket: one RawConn.Read for the life of
// the connection, whose function reads until the socket is empty and
// then returns false, so that the goroutine waits for the next bytes in
// the poller, holding no buffer.
func (c *wsConn) pumpRaw(dir int, src syscall.RawConn) {
	var done bool
	src.Read(func(fd uintptr) bool {
		bp := relayBuffers.Get().(*[]byte)
		defer relayBuffers.Put(bp)
		for {
			n, err := sysRead(fd, *bp)
			switch {
			case err == syscall.EAGAIN:
				return false
			case err != nil || n == 0:
				done = true
			default:
				done = c.forward(dir, (*bp)[:n]) != nil
			}
			if done {
				return true
			}
		}
	})
}

// pumpConn moves bytes from a connection that is not a plain socket
// (TLS); it holds a buffer while it waits.
func (c *wsConn) pumpConn(dir int, src net.Conn) {
	for {
		bp := relayBuffers.Get().(*[]byte)
		n, rerr := src.Read(*bp)
		var werr error
		if n > 0 {
			werr = c.forward(dir, (*bp)[:n])
		}
		relayBuffers.Put(bp)
		if rerr != nil || werr != nil {
			return
		}
	}
}

// rawSocket returns conn's socket, for the relay to read and write with
// raw system calls, or nil when conn is not a socket in non-blocking
// mode (TLS, a pipe). A raw call skips the runtime's bookkeeping for a
// call that may block (entersyscall), which costs little itself but
// wakes the runtime's sysmon thread whenever the process was idle, as a
// proxy between two messages is: a futex wake in the hop's path and two
// more context switches (a fifth of the proxy's CPU per round trip,
// docs/benchmarks.md). The sockets are non-blocking, so the calls return
// at once; when one would block, it says EAGAIN and the goroutine waits
// in the poller as net.Conn's do.
func rawSocket(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	nonblocking := false
	err = rc.Control(func(fd uintptr) {
		fl, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = errno == 0 && fl&syscall.O_NONBLOCK != 0
	})
	if err != nil || !nonblocking {
		return nil
	}
	return rc
}

// sysRead and sysWrite are read(2) and write(2) on a non-blocking socket.
func sysRead(fd uintptr, b []byte) (int, error) {
	return rawIO(syscall.SYS_READ, fd, b)
}

func sysWrite(fd uintptr, b []byte) (int, error) {
	return rawIO(syscall.SYS_WRITE, fd, b)
}

func rawIO(trap, fd uintptr, b []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
		default:
			return 0, errno
		}
	}
}

var errClosing = errors.New("websocket closing")

// forward writes b to dir's side, stopping at a frame boundary to send
// a close frame if one is wanted.
func (c *wsConn) forward(dir int, b []byte) error {
	d := &c.dirs[dir]
	d.mu.Lock()
	defer d.mu.Unlock()
	if !c.websocket {
		return d.write(b)
	}
	for len(b) > 0 {
		n, ended := d.scan.scan(b)
		if !d.sent {
			if err := d.write(b[:n]); err != nil {
				return err
			}
		}
		b = b[n:]
		if !ended {
			continue
		}
		if d.sent && dir == toBackend && d.scan.opcode == 0x8 {
			// The client answered our close frame: done.
			return errClosing
		}
		if d.want && !d.sent {
			d.sendClose()
		}
	}
	return nil
}

func (d *direction) sendClose() {
	d.dst.SetWriteDeadline(time.Now().Add(closeGrace))
	d.write(d.closeFrame)
	d.sent = true
}

// goAway sends each side a 1001 close frame (at a frame boundary), and
// closes the connection once the client answers or closeGrace passes.
func (c *wsConn) goAway() {
	if c.websocket {
		for i := range c.dirs {
			d := &c.dirs[i]
			d.mu.Lock()
			if !d.sent {
				if d.scan.boundary() {
					d.sendClose()
				} else {
					d.want = true
				}
			}
			d.mu.Unlock()
		}
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-c.done: // the client answered, or a side closed
		case <-t.C:
		}
	}
	c.close()
}

// close closes both sides (once) and forgets c.
func (c *wsConn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.back.Close()
		c.up.mu.Lock()
		delete(c.up.ws, c)
		c.up.mu.Unlock()
		c.m.websockets.Add(-1)
		close(c.done)
	})
}

// frameScanner follows WebSocket frame boundaries (RFC 6455 5.2) in a
// stream of bytes, without buffering them.
type frameScanner struct {
	hdr    [14]byte
	n      int    // header bytes seen of the frame in progress
	left   uint64 // payload bytes left of the frame in progress
	inBody bool
	opcode byte // of the last frame whose header was complete
}

func (f *frameScanner) boundary() bool { return f.n == 0 && !f.inBody }

// headerLen is the length of a frame header, given its first two bytes.
func headerLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// scan consumes b up to the end of the frame in progress; it returns
// how many bytes that was, and whether a frame ended there.
func (f *frameScanner) scan(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		if f.inBody {
			k := uint64(len(b) - i)
			if k > f.left {
				k = f.left
			}
			i += int(k)
			f.left -= k
			if f.left == 0 {
				f.inBody = false
				return i, true
			}
			continue
		}
		f.hdr[f.n] = b[i]
		f.n++
		i++
		if f.n < 2 || f.n < headerLen(f.hdr[0], f.hdr[1]) {
			continue
		}
		var size uint64
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			size = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
		case 127:
			for _, x := range f.hdr[2:10] {
				size = size<<8 | uint64(x)
			}
		default:
			size = uint64(l)
		}
		f.opcode = f.hdr[0] & 0x0f
		f.n = 0
		if size == 0 {
			return i, true
		}
		f.left, f.inBody = size, true
	}
	return i, false
}
