package fastloop

import (
	"bytes"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// request is what the loop needs of a request head. Its slices point
// into the head.
type request struct {
	method             string // "GET" or "HEAD"
	target, path, host []byte
	head               bool // HEAD
	close              bool // Connection: close
	// client is set when the head has headers about the client
	// (headers.ClientHeader): they are left out of lines, and the loop
	// writes its own, unless the peer is a trusted proxy.
	client bool
	lines  [][2]int
}

// parse recognises a GET or HEAD request head without a body, with
// plain header lines and one valid Host; anything else is false. Its
// lines are those to pass on: neither hop-by-hop headers nor those
// about the client.
func (r *request) parse(head []byte) bool {
	*r = request{lines: r.lines[:0]} // the lines' array is reused
	eol := bytes.IndexByte(head, '\n')
	if eol < 1 || head[eol-1] != '\r' {
		return false
	}
	line := head[:eol-1]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.method = "GET"
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.method, r.head = "HEAD", true
	default:
		return false
	}
	rest := line[len(r.method)+1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp < 1 || !bytes.Equal(rest[sp+1:], []byte("HTTP/1.1")) {
		return false
	}
	r.target = rest[:sp]
	if r.target[0] != '/' {
		return false
	}
	r.path = r.target
	for i, c := range r.target {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return false
		}
		if c == '?' && len(r.path) == len(r.target) {
			r.path = r.target[:i]
		}
	}
	hosts := 0
	for pos := eol + 1; ; {
		end := bytes.IndexByte(head[pos:], '\n')
		if end < 1 || head[pos+end-1] != '\r' {
			return false
		}
		l := head[pos : pos+end-1]
		if len(l) == 0 {
			break
		}
		name, value, ok := headerLine(l)
		if !ok {
			return false
		}
		skip := false
		switch {
		case equalFold(name, "host"):
			hosts++
			r.host = value
		case equalFold(name, "content-length"):
			if !bytes.Equal(value, []byte("0")) {
				return false
			}
		case equalFold(name, "connection"):
			switch {
			case equalFold(value, "close"):
				r.close = true
			case equalFold(value, "keep-alive"):
			default:
				return false
			}
			skip = true
		case equalFold(name, "transfer-encoding"), equalFold(name, "upgrade"), equalFold(name, "expect"),
			equalFold(name, "te"), equalFold(name, "trailer"):
			return false
		case headers.IsHopByHop(name):
			skip = true
		default:
			if c, _ := headers.ClientHeader(name); c {
				r.client, skip = true, true
			}
		}
		if !skip {
			r.lines = append(r.lines, [2]int{pos, pos + end + 1})
		}
		pos += end + 1
	}
	return hosts == 1 && validHostHeader(r.host)
}

// headerLine splits a header line (without its CRLF) into a token name
// and a value without surrounding blanks; false if it is not plain.
func headerLine(l []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(l, ':')
	if colon < 1 {
		return nil, nil, false
	}
	name = l[:colon]
	for _, c := range name {
		if !tokenChars[c] {
			return nil, nil, false
		}
	}
	value = l[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// tokenChars are the bytes of a token (RFC 9110 5.6.2), as a table:
// every byte of every header name is looked up.
var tokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(c)) >= 0
	}
	return t
}()

// equalFold compares ASCII b with lower-case s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// validHostHeader accepts host names, IPv4 and bracketed IPv6
// addresses, with an optional port.
func validHostHeader(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' ||
			c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}
