package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// plainAnswer is an upstream's answer that the fast loop passes on as it
// came, head and body, without parsing it into an http.Response: the
// common answer, with a Content-Length and ordinary headers. Its head is
// still unread in the connection's buffer.
type plainAnswer struct {
	pc   *pconn
	pool *connPool

	head    []byte // through the blank line: a view of pc's buffer
	status  int
	length  int64 // body bytes that follow the head
	close   bool  // the upstream closes the connection after it
	lines   [][2]int
	hasDate bool
	hasHSTS bool
}

// plainHead recognises a plain answer head in br without consuming it:
// "HTTP/1.1 NNN reason" with a final status other than 101, header lines
// that need no unfolding, no Transfer-Encoding, Connection naming only
// close or keep-alive, and one Content-Length unless the answer has no
// body (to HEAD, 204, 304). Anything else is left to http.ReadResponse.
func plainHead(br *bufio.Reader, toHEAD bool) (*plainAnswer, bool) {
	head, err := peekHead(br)
	if err != nil || head == nil {
		return nil, false
	}
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return nil, false
	}
	line := head[:eol-1]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || len(line) > 12 && line[12] != ' ' {
		return nil, false
	}
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, false
		}
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 || status > 599 {
		return nil, false
	}
	a := &plainAnswer{head: head, status: status, length: -1}
	for pos := eol + 1; ; {
		end := bytes.IndexByte(head[pos:], '\n')
		if end < 1 || head[pos+end-1] != '\r' {
			return nil, false
		}
		l := head[pos : pos+end-1]
		if len(l) == 0 {
			break
		}
		colon := bytes.IndexByte(l, ':')
		if colon < 1 {
			return nil, false
		}
		name := l[:colon]
		for _, c := range name {
			if !isTokenChar(c) {
				return nil, false
			}
		}
		value := bytes.Trim(l[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, false
			}
		}
		skip := false
		switch {
		case equalFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if a.length >= 0 || err != nil || n < 0 || value[0] == '+' {
				return nil, false
			}
			a.length = n
		case equalFold(name, "transfer-encoding"), equalFold(name, "trailer"):
			return nil, false
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				a.close = true
			case equalFold(value, "keep-alive"):
			default:
				return nil, false
			}
			skip = true
		case equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"), equalFold(name, "upgrade"),
			equalFold(name, "te"), equalFold(name, "proxy-authenticate"), equalFold(name, "proxy-authorization"):
			skip = true
		case equalFold(name, "date"):
			a.hasDate = true
		case equalFold(name, "strict-transport-security"):
			a.hasHSTS = true
		}
		if !skip {
			a.lines = append(a.lines, [2]int{pos, pos + end + 1})
		}
		pos += end + 1
	}
	if toHEAD || status == http.StatusNoContent || status == http.StatusNotModified {
		a.length = 0
	} else if a.length < 0 {
		return nil, false // chunked, or delimited by the end of the connection
	}
	return a, true
}

// writeTo passes the answer on to the client; it reports whether the
// client's connection is still good. The upstream connection goes back
// to the pool if the answer was read whole and the upstream keeps it.
func (a *plainAnswer) writeTo(bw *bufio.Writer, hsts, closing bool) (int64, bool) {
	pc := a.pc
	pc.waitSince.Store(0)
	eol := bytes.IndexByte(a.head, '\n')
	bw.Write(a.head[:eol+1])
	if hsts && !a.hasHSTS {
		bw.WriteString("Strict-Transport-Security: max-age=31536000\r\n")
	}
	if !a.hasDate {
		writeDate(bw)
	}
	for _, l := range a.lines {
		bw.Write(a.head[l[0]:l[1]])
	}
	if closing {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	pc.br.Discard(len(a.head))
	var n int64
	var err error
	if a.length > 0 {
		n, err = io.CopyN(bw, pc.br, a.length)
	}
	if err != nil || a.close {
		a.pool.discard(pc)
	} else {
		a.pool.put(pc)
	}
	if err != nil {
		// Cut short: the client must not take it as whole.
		bw.Flush()
		return n, false
	}
	return n, bw.Flush() == nil
}
