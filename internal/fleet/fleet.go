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
	"github.com/hoistdev/hoist/internal/usererr"
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
	_, results := Map(ctx, hosts, parallel, dial, noValue(fn))
	return results
}

// Map is Each for an fn that gives a value: values[i] is what fn gave
// on hosts[i] (the zero value where it did not run), results[i] how it
// went there. Each host has its own slot, so fn needs no lock to report.
func Map[T any](ctx context.Context, hosts []string, parallel int, dial DialFunc, fn func(ctx context.Context, host string, conn transport.Conn) (T, error)) (values []T, results []Result) {
	members := Connect(ctx, hosts, parallel, dial)
	defer Close(members)
	return MapMembers(ctx, members, parallel, fn)
}

func noValue(fn func(ctx context.Context, host string, conn transport.Conn) error) func(context.Context, string, transport.Conn) (struct{}, error) {
	return func(ctx context.Context, host string, conn transport.Conn) (struct{}, error) {
		return struct{}{}, fn(ctx, host, conn)
	}
}

// Member is a host and its connection, or why there is none.
type Member struct {
	Host string
	Conn transport.Conn
	Err  error
}

// Connect dials every host, at most parallel at a time.
func Connect(ctx context.Context, hosts []string, parallel int, dial DialFunc) []Member {
	members := make([]Member, len(hosts))
	for i, h := range hosts {
		members[i].Host = h
	}
	bounded(ctx, len(hosts), parallel, func(i int) {
		members[i].Conn, members[i].Err = dial(ctx, hosts[i])
	}, func(i int, err error) { members[i].Err = err })
	return members
}

// EachMember runs fn for every connected member, at most parallel at a
// time; a member without a connection keeps its dial error.
func EachMember(ctx context.Context, members []Member, parallel int, fn func(ctx context.Context, host string, conn transport.Conn) error) []Result {
	_, results := MapMembers(ctx, members, parallel, noValue(fn))
	return results
}

// MapMembers is Map on members already connected.
func MapMembers[T any](ctx context.Context, members []Member, parallel int, fn func(ctx context.Context, host string, conn transport.Conn) (T, error)) ([]T, []Result) {
	values := make([]T, len(members))
	results := make([]Result, len(members))
	for i, m := range members {
		results[i] = Result{Host: m.Host, Err: m.Err}
	}
	bounded(ctx, len(members), parallel, func(i int) {
		if members[i].Err == nil {
			values[i], results[i].Err = fn(ctx, members[i].Host, members[i].Conn)
		}
	}, func(i int, err error) {
		if results[i].Err == nil {
			results[i].Err = err
		}
	})
	return values, results
}

// Close closes the members' connections.
func Close(members []Member) {
	for _, m := range members {
		if m.Err == nil && m.Conn != nil {
			m.Conn.Close()
		}
	}
}

// bounded runs do(i) for i in [0,n), at most parallel at once; when ctx
// ends first, the ones not started get cancelled(i, ctx.Err()).
func bounded(ctx context.Context, n, parallel int, do func(i int), cancelled func(i int, err error)) {
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				cancelled(i, ctx.Err())
				return
			}
			defer func() { <-sem }()
			do(i)
		}()
	}
	wg.Wait()
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

// Distinct refuses members that reached one machine under two names (an
// address and a name, user@host and host): they present the same SSH
// host key. Deployed to twice at once, one machine would run two
// activations of the same app side by side.
func Distinct(members []Member) error {
	seen := map[string]string{}
	for _, m := range members {
		k, ok := m.Conn.(interface{ HostKey() string })
		if m.Err != nil || !ok || k.HostKey() == "" {
			continue
		}
		if first, dup := seen[k.HostKey()]; dup {
			return usererr.New("hosts %s and %s are one machine: both present the SSH host key %s", first, m.Host, k.HostKey()).
				WithHint("list each host once in hoist.yml (machines cloned from one image must each get host keys of their own)")
		}
		seen[k.HostKey()] = m.Host
	}
	return nil
}
