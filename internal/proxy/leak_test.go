package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestUnreadUpstreamBytesNeverReused: bytes an upstream sends beyond its
// answer (a body to HEAD, more than its Content-Length, bytes after the
// end of a chunked answer, bytes that come later) must never be read as
// the answer to the next request on that upstream connection, which may
// be another client's.
func TestUnreadUpstreamBytesNeverReused(t *testing.T) {
	leaked := string(answer("LEAKED"))
	tests := map[string]struct {
		method string
		first  string // the upstream's answer to the first request
		later  bool   // the leaked bytes come after the answer, later
	}{
		"HEAD answered with a body": {"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(leaked)) + "\r\n\r\n" + leaked, false},
		"more than Content-Length":  {"GET", string(answer("first")) + leaked, false},
		"bytes after a chunked end": {"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n" + leaked, false},
		"bytes after the answer":    {"GET", string(answer("first")), true},
	}
	bothPaths(t, func(t *testing.T, fast bool) {
		for name, tt := range tests {
			t.Run(name, func(t *testing.T) {
				sent := make(chan struct{})
				up := newRawUpstream(t, func(r *http.Request) []byte {
					if r.URL.Path == "/first" {
						return []byte(tt.first)
					}
					return answer("second")
				})
				if tt.later {
					up.after = func(r *http.Request) ([]byte, chan<- struct{}) {
						if r.URL.Path != "/first" {
							return nil, nil
						}
						return []byte(leaked), sent
					}
				} else {
					close(sent)
				}
				s, front := newProxy(t, Options{}, fast)
				setRoute(t, s, route("a", up.addr(), "a.test"))
				addr := addrOf(front.URL)
				// Clients that keep their connections: nothing they send
				// tells the proxy to close its upstream connection.
				if code, body := oneExchange(t, addr, tt.method+" /first HTTP/1.1\r\nHost: a.test\r\n\r\n", tt.method); code != 200 {
					t.Fatalf("first client got %d %q", code, body)
				}
				<-sent
				if code, body := oneExchange(t, addr, "GET /second HTTP/1.1\r\nHost: a.test\r\n\r\n", "GET"); code != 200 || body != "second" {
					t.Errorf("second client got %d %q instead of its own answer", code, body)
				}
				if n := len(up.requests()); n != 2 {
					t.Errorf("upstream got %d requests, want 2", n)
				}
			})
		}
	})
}

// sendRaw sends raw on a new connection to addr, which has 5 s for the
// whole exchange: a bound in case the proxy waits for more, not what
// decides a test.
func sendRaw(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// oneExchange sends raw on a new connection to addr and reads one
// answer, to method.
func oneExchange(t *testing.T, addr, raw, method string) (int, string) {
	t.Helper()
	c := sendRaw(t, addr, raw)
	defer c.Close()
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("answer body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// TestUnreadUpstreamBytesUnderLoad: with many clients at once, a
// connection is handed to the next request as soon as an answer ends;
// bytes an upstream sent beyond its answer must still never reach that
// request. Without guardedConn, http.Transport failed it under -race
// (whose slower scheduling widens the transport's window).
func TestUnreadUpstreamBytesUnderLoad(t *testing.T) { bothPaths(t, testUnreadUpstreamBytesUnderLoad) }

func testUnreadUpstreamBytesUnderLoad(t *testing.T, fast bool) {
	leaked := string(answer("LEAKED"))
	up := newRawUpstream(t, func(r *http.Request) []byte {
		if r.Method == http.MethodHead {
			return []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(leaked)) + "\r\n\r\n" + leaked)
		}
		return answer("own")
	})
	s, front := newProxy(t, Options{}, fast)
	setRoute(t, s, route("a", up.addr(), "a.test"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				method := http.MethodGet
				if (i+w)%2 == 0 {
					method = http.MethodHead
				}
				err = leakCheck(client, front.URL, method)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// leakCheck sends one request and says if a GET got another's bytes.
func leakCheck(client *http.Client, url, method string) error {
	req, _ := http.NewRequest(method, url+"/", nil)
	req.Host = "a.test"
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if method == http.MethodGet && (resp.StatusCode != 200 || string(b) != "own") {
		return fmt.Errorf("a GET got %d %q instead of its own answer", resp.StatusCode, b)
	}
	return nil
}
