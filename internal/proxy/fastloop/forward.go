package fastloop

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/hoistdev/hoist/internal/proxy/headers"
)

// forward answers req from t's upstream, filling in f; it reports
// whether the client's connection can serve another request.
func (s *Server) forward(cc *conn, bw *bufio.Writer, head []byte, req *request, t Target, f *Finished) bool {
	p := s.pool(t.Addr)
	pc, a, resp, err := p.exchange(cc.raw, req.head, func(w *bufio.Writer) {
		w.Write(head[:bytes.IndexByte(head, '\n')+1])
		for _, l := range req.lines {
			w.Write(head[l[0]:l[1]])
		}
		headers.WriteUntrusted(w, cc.ip, f.TLS, f.Host)
		w.WriteString("\r\n")
	})
	if errors.Is(err, errClientLeft) {
		f.Status = 499 // nobody reads an answer
		return false
	}
	if err != nil {
		f.Status = http.StatusBadGateway
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			f.Status = http.StatusGatewayTimeout
		}
		var ok bool
		f.Bytes, ok = s.page(bw, req, f.Status, t.Page)
		return ok
	}
	var ok, reuse bool
	if a != nil {
		f.Status = a.status
		f.Bytes, ok = a.writeTo(bw, pc.br, t.HSTS, req.close)
		reuse = ok && !a.close
	} else {
		f.Status = resp.StatusCode
		f.Bytes, ok = writeResponse(bw, req.head, req.close, resp, t.HSTS)
		reuse = ok && !resp.Close
	}
	p.done(pc, reuse)
	return ok
}

// page writes one of the proxy's error pages: the target's own (own
// may be nil), else the proxy's.
func (s *Server) page(bw *bufio.Writer, req *request, code int, own func(int) string) (int64, bool) {
	body := s.cfg.Page(code)
	if own != nil {
		if b := own(code); b != "" {
			body = b
		}
	}
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	writeDate(bw)
	bw.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")
	bw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	if req.close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if req.head {
		return 0, bw.Flush() == nil
	}
	bw.WriteString(body)
	return int64(len(body)), bw.Flush() == nil
}
