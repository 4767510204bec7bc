package host

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// The host's end of the protocol (internal/hostproto): `hoist host VERB`
// reads the request, checks the app and the destination, and serves the
// verb from the table in verbs.go.

// call is one verb being served on the host: the app's layout, who
// asks, and the streams left after the request line.
type call struct {
	layout      Layout
	destination string
	actor       hostproto.Actor
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
	// terminal is stdin when it is a terminal (exec -t), for a command
	// to run on.
	terminal *os.File
}

// verb is a command that answers with a Response: the client sends A
// and gets R.
type verb[A, R any] struct {
	hostproto.Verb[A, R]
	serve func(ctx context.Context, c *call, args A) (R, error)
}

// streamVerb is a command whose output is a command's own: it exits with
// that command's status.
type streamVerb[A any] struct {
	hostproto.StreamVerb[A]
	serve func(ctx context.Context, c *call, args A) (code int, err error)
}

// handler is a verb of either kind, for the host's table.
type handler interface {
	verbName() string
	// answers is true for a verb that answers with a Response, false
	// for a stream verb.
	answers() bool
	handle(ctx context.Context, c *call, args json.RawMessage) int
}

func (v verb[A, R]) verbName() string { return v.Name }

func (v streamVerb[A]) verbName() string { return v.Name }
func (verb[A, R]) answers() bool         { return true }
func (streamVerb[A]) answers() bool      { return false }

func (v verb[A, R]) handle(ctx context.Context, c *call, raw json.RawMessage) int {
	args, err := hostproto.DecodeArgs[A](raw)
	var result R
	if err == nil {
		result, err = v.serve(ctx, c, args)
	}
	if err != nil {
		hostproto.WriteError(c.stdout, err)
		return 1
	}
	if err := hostproto.WriteResult(c.stdout, result); err != nil {
		fmt.Fprintf(c.stderr, "hoist host %s: %v\n", v.Name, err)
		return 1
	}
	return 0
}

func (v streamVerb[A]) handle(ctx context.Context, c *call, raw json.RawMessage) int {
	args, err := hostproto.DecodeArgs[A](raw)
	code := 0
	if err == nil {
		code, err = v.serve(ctx, c, args)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "hoist host %s: %v\n", v.Name, err)
		return 1
	}
	return code
}

// Main serves `hoist host VERB`: argv is what follows `hoist host`. It
// returns the process's exit status.
func Main(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Serve(ctx, DefaultBase, argv, stdin, stdout, stderr)
}

// Serve is Main with the apps' directories under base: a host in a
// directory, for tests of the client side.
func Serve(ctx context.Context, base string, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(argv) != 1 {
		fmt.Fprintln(stderr, "usage: hoist host VERB, with its request on stdin (hoist runs this over SSH)")
		return hostproto.ExitUsage
	}
	h, ok := verbs[argv[0]]
	if !ok {
		fmt.Fprintf(stderr, "hoist host: unknown verb %q\n", argv[0])
		return hostproto.ExitUsage
	}
	terminal := asTerminal(stdin)
	var in *bufio.Reader
	if terminal != nil {
		// Not a byte past the request line: what follows is typed for
		// the command, which reads the terminal itself.
		in = bufio.NewReader(byteReader{terminal})
	} else {
		in = bufio.NewReader(stdin)
	}
	req, err := hostproto.ReadRequest(in)
	if err == nil {
		if verr := hostproto.CheckVersion(req); verr != nil {
			// Nothing else of the request is read: another protocol may
			// mean it differently. A stream verb's stdout is the
			// command's, so its client reads the refusal on stderr.
			if h.answers() {
				hostproto.WriteError(stdout, verr)
			} else {
				fmt.Fprintf(stderr, "hoist host: %v\n", verr)
			}
			return hostproto.ExitVersion
		}
		err = hostproto.CheckApp(req.App)
	}
	l := For(base, req.App)
	if err == nil {
		err = checkDestination(l, req.Destination, req.Adopt)
	}
	if err != nil {
		hostproto.WriteError(stdout, err)
		return 1
	}
	c := &call{layout: l, destination: req.Destination, stdin: in, stdout: stdout, stderr: stderr, terminal: terminal}
	if req.Actor != nil {
		c.actor = *req.Actor
	}
	return h.handle(ctx, c, req.Args)
}

// asTerminal returns r when it is a terminal, else nil.
func asTerminal(r io.Reader) *os.File {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// byteReader reads one byte at a time.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) { return b.r.Read(p[:min(1, len(p))]) }

// verbTable indexes handlers by name; a name defined twice is a bug.
func verbTable(hs ...handler) map[string]handler {
	m := make(map[string]handler, len(hs))
	for _, h := range hs {
		if _, dup := m[h.verbName()]; dup || strings.TrimSpace(h.verbName()) == "" {
			panic("host: verb " + h.verbName() + " defined twice or without a name")
		}
		m[h.verbName()] = h
	}
	return m
}
