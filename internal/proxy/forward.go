package proxy

import (
	"errors"
	"io"
	"net/http"
)

// forward passes r on to e's upstream through the upstream's
// ReverseProxy, over the shared transport, its body held to the route's
// limit; a plain HTTP/2 request, with the fast loop on, over the loop's
// pools instead (h2fast.go).
func (s *Server) forward(w http.ResponseWriter, r *http.Request, e *entry) {
	limit := e.route.MaxBodyBytes
	if r.ContentLength > limit {
		// Refused before a byte of it is read (an Expect: 100-continue
		// client sends none); the rest would only be read to be dropped.
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		page(w, http.StatusRequestEntityTooLarge)
		return
	}
	if ups := s.h2Upstreams.Load(); ups != nil && s.h2Plain(r) {
		s.forwardH2(w, r, e, ups)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &limitedBody{rc: r.Body, left: limit}
	}
	e.up.rp.ServeHTTP(w, r)
}

// limitedBody is a request body that fails once it passes its limit (a
// chunked body, or one longer than it said), and marks the errors that
// come from the client, so that upstreamError answers them (413, 400)
// rather than blaming the upstream (502).
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

var errBodyTooLarge = errors.New("request body too large")

// bodyError is a failure to read the client's request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func (e *bodyError) code() int {
	if errors.Is(e.err, errBodyTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more than allowed tells it is too long
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		return int(b.left), &bodyError{errBodyTooLarge}
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
