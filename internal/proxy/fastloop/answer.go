package fastloop

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// plainAnswer is an upstream's answer that the loop passes on as it
// came, head and body, without parsing it into an http.Response: the
// common answer, with a Content-Length and ordinary headers. Its head is
// still unread in the connection's buffer.
type plainAnswer struct {
	head    []byte // through the blank line: a view of the connection's buffer
	status  int
	length  int64 // body bytes that follow the head
	close   bool  // the upstream closes the connection after it
	lines   [][2]int
	hasDate bool
	hasHSTS bool
}

// parsePlain recognises a plain answer head (through its blank line):
// "HTTP/1.1 NNN reason" with a final status other than 101, header lines
// that need no unfolding, no Transfer-Encoding, Connection naming only
// close or keep-alive, and one Content-Length unless the answer has no
// body (to HEAD, 204, 304). Anything else is left to http.ReadResponse.
func parsePlain(head []byte, toHEAD bool) (*plainAnswer, bool) {
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
		name, value, ok := headerLine(l)
		if !ok {
			return nil, false
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
		case headers.IsHopByHop(name):
			skip = true
		case equalFold(name, "date"):
			a.hasDate = true
		case headers.IsHSTS(name):
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

// writeTo passes the answer on to the client, reading its body from br
// (whose buffer holds the head); it returns the body bytes written and
// whether the answer was read whole and written.
func (a *plainAnswer) writeTo(bw *bufio.Writer, br *bufio.Reader, hsts, closing bool) (int64, bool) {
	eol := bytes.IndexByte(a.head, '\n')
	bw.Write(a.head[:eol+1])
	headers.WriteHSTS(bw, hsts, a.hasHSTS)
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
	br.Discard(len(a.head))
	var n int64
	var err error
	if a.length > 0 {
		n, err = io.CopyN(bw, br, a.length)
	}
	if err != nil {
		// Cut short: the client must not take it as whole.
		bw.Flush()
		return n, false
	}
	return n, bw.Flush() == nil
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeResponse writes a parsed answer to the client, with HSTS if asked
// and the upstream set none; it returns the body bytes written and
// whether the answer was read whole and written.
func writeResponse(bw *bufio.Writer, toHEAD, closing bool, resp *http.Response, hsts bool) (int64, bool) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(resp.Status)
	bw.WriteString("\r\n")
	_, set := resp.Header[headers.StrictTransportSecurity]
	headers.WriteHSTS(bw, hsts, set)
	if _, set := resp.Header["Date"]; !set {
		// A proxy adds the Date an upstream left out (RFC 9110 6.6.1).
		writeDate(bw)
	}
	noBody := toHEAD || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	chunked := !noBody && resp.ContentLength < 0
	headers.StripHop(resp.Header)
	for k, vs := range resp.Header {
		if k == "Content-Length" && !noBody {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case !noBody:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(resp.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if closing {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if noBody || resp.ContentLength == 0 {
		return 0, bw.Flush() == nil
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(k), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:k])
				bw.WriteString("\r\n")
				// A streamed answer (server-sent events): each piece goes
				// out as it comes.
				if bw.Flush() != nil {
					return n, false
				}
			} else if _, err := bw.Write(buf[:k]); err != nil {
				return n, false
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// Cut short: the client must not take it as whole.
			bw.Flush()
			return n, false
		}
	}
	if chunked {
		bw.WriteString("0\r\n")
		for k, vs := range resp.Trailer {
			for _, v := range vs {
				bw.WriteString(k + ": " + v + "\r\n")
			}
		}
		bw.WriteString("\r\n")
	}
	return n, bw.Flush() == nil && (chunked || n == resp.ContentLength)
}

func writeDate(bw *bufio.Writer) {
	bw.WriteString("Date: ")
	bw.Write(time.Now().UTC().AppendFormat(make([]byte, 0, 32), http.TimeFormat))
	bw.WriteString("\r\n")
}
