package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/hoistdev/hoist/internal/accessory"
	"github.com/hoistdev/hoist/internal/usererr"
)

// The host protocol, both ends of it. The client runs `hoist host VERB`
// over SSH; the verb's arguments come first on stdin, as one JSON line
// (a request), then the verb's payload if it has one (a release being
// uploaded, a command's stdin). Most verbs answer with one JSON Response
// on stdout, so that the client tells a host's answer from an SSH or
// shell failure and gets structured errors (a held lock, a failed health
// check) back; stream verbs (exec, logs) write the command's own output
// and exit with its status. stderr carries progress.
//
// Each verb is defined once, in verbs.go, with its argument and result
// types: the client encodes what the host decodes. Nothing older is
// spoken: setup puts the client's own hoist on every host.

// request is the first line a verb reads on stdin.
type request struct {
	App string `json:"app"`
	// Destination is the app's destination the client works on; a host
	// set up for another refuses the request (destination.go).
	Destination string `json:"destination,omitempty"`
	// Actor is who asks, for the audit trail.
	Actor *Actor          `json:"actor,omitempty"`
	Args  json.RawMessage `json:"args,omitempty"`
}

// exitUsage is the exit status of `hoist host` called wrongly: by a
// hoist that speaks another protocol.
const exitUsage = 2

// maxRequest bounds the request line: the largest argument is a secret
// env file (4 MiB, base64 in JSON).
const maxRequest = 8 << 20

// Response is what a verb that is not a stream writes on stdout.
type Response struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RemoteError    `json:"error,omitempty"`
}

// RemoteError is an error as a host reported it.
type RemoteError struct {
	Message string       `json:"message"`
	Lock    *Lock        `json:"lock,omitempty"`   // set when a lock is held
	Health  *HealthError `json:"health,omitempty"` // set when a release failed its check
	Relay   *RelayError  `json:"relay,omitempty"`  // set when a relay failed a transfer
	// Confirm is set when a restore would replace data and was not
	// confirmed.
	Confirm *accessory.ConfirmError `json:"confirm,omitempty"`
	Hint    string                  `json:"hint,omitempty"` // what to do, when the host knows
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap exposes the structured causes, so errors.As finds *LockedError,
// *HealthError, *accessory.ConfirmError and the hint's *usererr.Error on
// the client too.
func (e *RemoteError) Unwrap() []error {
	var errs []error
	switch {
	case e.Lock != nil:
		errs = append(errs, &LockedError{Lock: *e.Lock})
	case e.Health != nil:
		errs = append(errs, e.Health)
	case e.Relay != nil:
		errs = append(errs, e.Relay)
	case e.Confirm != nil:
		errs = append(errs, e.Confirm)
	}
	if e.Hint != "" {
		errs = append(errs, &usererr.Error{Msg: e.Message, Hint: e.Hint})
	}
	return errs
}

// none is the arguments or result of a verb that has none.
type none struct{}

// call is one verb being served on the host: the app's layout, who
// asks, and the streams left after the request line.
type call struct {
	layout      Layout
	destination string
	actor       Actor
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
	name  string
	serve func(ctx context.Context, c *call, args A) (R, error)
}

// streamVerb is a command whose output is a command's own: it exits with
// that command's status.
type streamVerb[A any] struct {
	name  string
	serve func(ctx context.Context, c *call, args A) (code int, err error)
}

// handler is a verb of either kind, for the host's table.
type handler interface {
	verbName() string
	handle(ctx context.Context, c *call, args json.RawMessage) int
}

func (v verb[A, R]) verbName() string    { return v.name }
func (v streamVerb[A]) verbName() string { return v.name }
func (v verb[A, R]) handle(ctx context.Context, c *call, raw json.RawMessage) int {
	args, err := decodeArgs[A](raw)
	var result R
	if err == nil {
		result, err = v.serve(ctx, c, args)
	}
	if err != nil {
		writeError(c.stdout, err)
		return 1
	}
	if err := writeResult(c.stdout, result); err != nil {
		fmt.Fprintf(c.stderr, "hoist host %s: %v\n", v.name, err)
		return 1
	}
	return 0
}

func (v streamVerb[A]) handle(ctx context.Context, c *call, raw json.RawMessage) int {
	args, err := decodeArgs[A](raw)
	code := 0
	if err == nil {
		code, err = v.serve(ctx, c, args)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "hoist host %s: %v\n", v.name, err)
		return 1
	}
	return code
}

// validator is arguments that can check themselves once decoded.
type validator interface{ Validate() error }

// decodeArgs decodes a verb's arguments strictly: both ends are the same
// hoist, so an unknown field is a bug, not an older client.
func decodeArgs[A any](raw json.RawMessage) (A, error) {
	var args A
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&args); err != nil {
			return args, fmt.Errorf("decode arguments: %w", err)
		}
	}
	if v, ok := any(&args).(validator); ok {
		if err := v.Validate(); err != nil {
			return args, err
		}
	}
	return args, nil
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
		return exitUsage
	}
	h, ok := verbs[argv[0]]
	if !ok {
		fmt.Fprintf(stderr, "hoist host: unknown verb %q\n", argv[0])
		return exitUsage
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
	req, err := readRequest(in)
	if err == nil && !ValidApp(req.App) {
		err = fmt.Errorf("invalid app name %q", req.App)
	}
	l := For(base, req.App)
	if err == nil {
		err = checkDestination(l, req.Destination)
	}
	if err != nil {
		writeError(stdout, err)
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

func readRequest(r *bufio.Reader) (request, error) {
	var req request
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxRequest {
			return req, fmt.Errorf("request longer than %d bytes", maxRequest)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			return req, fmt.Errorf("read request: %w", err)
		}
		break
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("decode request: %w", err)
	}
	return req, nil
}

// encode is the request line r with args.
func (r request) encode(args any) ([]byte, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode arguments: %w", err)
	}
	r.Args = b
	line, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(line, '\n'), nil
}

// writeResult writes a successful response.
func writeResult(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return json.NewEncoder(w).Encode(Response{OK: true, Result: b})
}

// writeError writes a failed response.
func writeError(w io.Writer, err error) {
	re := &RemoteError{Message: err.Error(), Hint: usererr.HintOf(err)}
	var le *LockedError
	if errors.As(err, &le) {
		re.Lock = &le.Lock
	}
	var he *HealthError
	if errors.As(err, &he) {
		re.Health = he
	}
	var rl *RelayError
	if errors.As(err, &rl) {
		re.Relay = rl
	}
	var ce *accessory.ConfirmError
	if errors.As(err, &ce) {
		re.Confirm = ce
	}
	_ = json.NewEncoder(w).Encode(Response{Error: re}) // the client sees a broken pipe by itself
}

// decodeResponse reads a Response and decodes its result into v.
func decodeResponse(b []byte, v any) error {
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("unexpected answer from host: %q", truncate(string(b), 200))
	}
	if !r.OK {
		if r.Error == nil {
			return errors.New("host reported an unknown error")
		}
		return r.Error
	}
	if v != nil && len(r.Result) > 0 {
		if err := json.Unmarshal(r.Result, v); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

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
