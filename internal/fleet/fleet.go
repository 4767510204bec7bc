// Package fleet runs one operation on many hosts at once, bounded, and
// keeps each host's outcome apart: one host that is down does not hide
// what happened on the others.
package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/hoistdev/hoist/internal/transport"
)

// DialFunc opens a connection to a host as the user named it.
type DialFunc func(ctx context.Context, host string) (transport.Conn, error)

// Result is the outcome on one host.
type Result struct {
	Host string
	Err  error
}

// Each runs fn for every host, at most parallel at a time, each with its
// own connection, and returns the results in the order of hosts.
func Each(ctx context.Context, hosts []string, parallel int, dial DialFunc, fn func(ctx context.Context, host string, conn transport.Conn) error) []Result {
	if parallel < 1 {
		parallel = 1
	}
	results := make([]Result, len(hosts))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Host: h, Err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			results[i] = Result{Host: h, Err: run(ctx, h, dial, fn)}
		}()
	}
	wg.Wait()
	return results
}

func run(ctx context.Context, h string, dial DialFunc, fn func(context.Context, string, transport.Conn) error) error {
	conn, err := dial(ctx, h)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ctx, h, conn)
}

// Failed returns the results that carry an error.
func Failed(rs []Result) []Result {
	var out []Result
	for _, r := range rs {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// PrefixWriter writes each line it gets to W with a host prefix; it is
// safe to share W between several PrefixWriters.
type PrefixWriter struct {
	W      io.Writer
	Prefix string
	Mu     *sync.Mutex
	buf    []byte
}

func (p *PrefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if err := p.emit(p.buf[:i+1]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Flush writes a last line that had no newline.
func (p *PrefixWriter) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := p.emit(append(p.buf, '\n'))
	p.buf = nil
	return err
}

func (p *PrefixWriter) emit(line []byte) error {
	if p.Mu != nil {
		p.Mu.Lock()
		defer p.Mu.Unlock()
	}
	_, err := fmt.Fprintf(p.W, "%s%s", p.Prefix, line)
	return err
}
