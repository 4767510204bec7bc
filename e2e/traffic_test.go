//go:build lab

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// labHTTPS is an HTTPS client that dials addr:443 for any URL, trusts
// roots, and speaks HTTP/2 or, if !h2, HTTP/1.1; keepAlive false opens a
// connection per request.
func labHTTPS(addr string, roots *x509.CertPool, name string, h2, keepAlive bool) *http.Client {
	conf := &tls.Config{RootCAs: roots, ServerName: name}
	if !h2 {
		conf.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: conf, ForceAttemptHTTP2: h2, DisableKeepAlives: !keepAlive,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr+":443")
		},
	}}
}

// holdWebSockets holds a WebSocket to host through the proxy at addr,
// reconnecting each time the proxy closes it with 1001 Going Away, until
// stop; it counts those closes, and reports any other end.
func holdWebSockets(addr, host string, stop <-chan struct{}, goAway *atomic.Int64, abnormal func(string)) {
	for i := 0; i < 100; i++ {
		code, err := holdWebSocket(addr, host, stop)
		switch {
		case err == nil && code == 0:
			return // stopped by the test while open
		case code == 1001:
			goAway.Add(1)
		default:
			abnormal(fmt.Sprintf("%s: code %d, %v", addr, code, err))
			return
		}
	}
}
