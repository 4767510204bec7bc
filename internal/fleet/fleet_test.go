package fleet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
	"github.com/hoistdev/hoist/internal/waittest"
)

type nopConn struct{ addr string }

func (c nopConn) Run(context.Context, string, io.Reader, io.Writer, io.Writer) error { return nil }
func (c nopConn) Addr() string                                                       { return c.addr }
func (c nopConn) User() string                                                       { return "root" }
func (c nopConn) Close() error                                                       { return nil }

func TestEachBoundsParallelismAndKeepsOrder(t *testing.T) {
	hosts := []string{"a", "down", "c", "d", "e"}
	var running, peak atomic.Int32
	dial := func(_ context.Context, h string) (transport.Conn, error) {
		if h == "down" {
			return nil, errors.New("cannot reach down:22")
		}
		return nopConn{h}, nil
	}
	// The first two hosts are held until the test lets them go, so that
	// two run at once whatever the pace of the goroutines.
	var started atomic.Int32
	release := make(chan struct{})
	done := make(chan []Result, 1)
	go func() {
		done <- Each(context.Background(), hosts, 2, dial, func(_ context.Context, h string, c transport.Conn) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if started.Add(1) <= 2 {
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
			}
			if c.Addr() != h {
				t.Errorf("conn for %s is %s", h, c.Addr())
			}
			return nil
		})
	}()
	waittest.For(t, "two hosts to run at once", func() bool { return running.Load() == 2 })
	// The pause is the input: the time a third host has to start, beyond
	// the limit, while two are held.
	time.Sleep(50 * time.Millisecond)
	if n := running.Load(); n != 2 {
		t.Errorf("%d hosts run at once while two are held, limit 2", n)
	}
	close(release)
	var rs []Result
	select {
	case rs = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Each did not return 10s after the held hosts were let go")
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Host)
	}
	if diff := cmp.Diff(hosts, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d hosts ran at once, want the limit, 2", p)
	}
	failed := Failed(rs)
	if len(failed) != 1 || failed[0].Host != "down" {
		t.Errorf("Failed = %+v, want only down", failed)
	}
}

func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	w := &PrefixWriter{W: &buf, Prefix: "h1 | ", Mu: &mu}
	io.WriteString(w, "one\ntw")
	io.WriteString(w, "o\nthree")
	w.Flush()
	if got, want := buf.String(), "h1 | one\nh1 | two\nh1 | three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Map keeps each host's value at its host's index, whatever order the
// hosts finish in, and a host that cannot be reached has the zero value.
func TestMapReturnsValuesByIndex(t *testing.T) {
	hosts := []string{"slow", "down", "fast"}
	dial := func(_ context.Context, h string) (transport.Conn, error) {
		if h == "down" {
			return nil, errors.New("cannot reach down:22")
		}
		return nopConn{h}, nil
	}
	fastDone := make(chan struct{})
	values, results := Map(context.Background(), hosts, 3, dial, func(_ context.Context, h string, _ transport.Conn) (string, error) {
		if h == "slow" {
			<-fastDone // finish after fast
			return "value of slow", nil
		}
		defer close(fastDone)
		return "value of fast", errors.New("fast failed")
	})
	if diff := cmp.Diff([]string{"value of slow", "", "value of fast"}, values); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	var errs []string
	for _, r := range results {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		errs = append(errs, r.Host+": "+msg)
	}
	if diff := cmp.Diff([]string{"slow: ", "down: cannot reach down:22", "fast: fast failed"}, errs); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

type keyedConn struct {
	nopConn
	key string
}

func (c keyedConn) HostKey() string { return c.key }

// Two names of one machine (the same host key) are refused, naming both;
// hosts that could not be reached, or whose key is unknown, are not
// compared.
func TestDistinct(t *testing.T) {
	for name, tt := range map[string]struct {
		members []Member
		want    string // in the error; "" for none
	}{
		"distinct": {members: []Member{{Host: "a", Conn: keyedConn{key: "SHA256:a"}}, {Host: "b", Conn: keyedConn{key: "SHA256:b"}}}},
		"one machine twice": {members: []Member{
			{Host: "10.0.0.5", Conn: keyedConn{key: "SHA256:x"}}, {Host: "b", Conn: keyedConn{key: "SHA256:b"}},
			{Host: "deploy@web1", Conn: keyedConn{key: "SHA256:x"}},
		}, want: "hosts 10.0.0.5 and deploy@web1 are one machine"},
		"down and keyless": {members: []Member{
			{Host: "a", Err: errors.New("down")}, {Host: "b", Conn: nopConn{"b"}}, {Host: "c", Conn: keyedConn{}}, {Host: "d", Conn: keyedConn{}},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			err := Distinct(tt.members)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || usererr.HintOf(err) == "") {
				t.Errorf("Distinct = %v (hint %q), want %q", err, usererr.HintOf(err), tt.want)
			}
		})
	}
}
