// Package hostproto is the host protocol that hoist on the laptop
// (internal/hostclient) and hoist on a host (internal/host) speak: the
// verbs' names with their argument and result types, the request and
// response framing, the errors a host reports. It dials nothing and
// does nothing on a host.
//
// The client runs `hoist host VERB` over SSH; the verb's arguments come
// first on stdin, as one JSON line (a request), then the verb's payload
// if it has one (a release being uploaded, a command's stdin). Most
// verbs answer with one JSON Response on stdout, so that the client
// tells a host's answer from an SSH or shell failure and gets
// structured errors (a held lock, a failed health check) back; stream
// verbs (exec, logs) write the command's own output and exit with its
// status. stderr carries progress.
//
// Each verb is defined once, in verbs.go, with its argument and result
// types: the client encodes what the host decodes. Every type that
// crosses the wire is defined here, the accessories' (accessory.go),
// the proxy's routes (route.go) and the certificates' (certs.go) too,
// and the host side runs them as they are: this package imports no
// host-side package (deps_test.go holds it), so a change to the host's
// internals is no protocol change, and the laptop links no host code.
package hostproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hoistdev/hoist/internal/usererr"
)

// Request is the first line a verb reads on stdin.
type Request struct {
	App string `json:"app"`
	// Destination is the app's destination the client works on; a host
	// set up for another refuses the request (destination.go).
	Destination string `json:"destination,omitempty"`
	// Adopt lets a setup of Destination take over a host set up for no
	// destination (hoist.yml alone).
	Adopt bool `json:"adopt,omitempty"`
	// Client is the hoist that asks and the protocol it speaks, which
	// the host checks first (version.go).
	Client *Peer `json:"client,omitempty"`
	// Actor is who asks, for the audit trail.
	Actor *Actor          `json:"actor,omitempty"`
	Args  json.RawMessage `json:"args,omitempty"`
}

// ExitUsage is the exit status of `hoist host` called wrongly: by a
// hoist that speaks another protocol.
const ExitUsage = 2

// MaxRequest bounds the request line: the largest argument is a secret
// env file (4 MiB, base64 in JSON).
const MaxRequest = 8 << 20

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
	// Version is set when the host speaks another protocol than the
	// client: it names both ends.
	Version *VersionError `json:"version,omitempty"`
	// Confirm is set when a restore would replace data and was not
	// confirmed.
	Confirm *ConfirmError `json:"confirm,omitempty"`
	Hint    string        `json:"hint,omitempty"` // what to do, when the host knows
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap exposes the structured causes, so errors.As finds *LockedError,
// *HealthError, *RelayError, *VersionError, *ConfirmError and the hint's *usererr.Error on
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
	case e.Version != nil:
		errs = append(errs, e.Version)
	case e.Confirm != nil:
		errs = append(errs, e.Confirm)
	}
	if e.Hint != "" {
		errs = append(errs, &usererr.Error{Msg: e.Message, Hint: e.Hint})
	}
	return errs
}

// None is the arguments or result of a verb that has none.
type None struct{}

// validator is arguments that can check themselves once decoded.
type validator interface{ Validate() error }

// DecodeArgs decodes a verb's arguments strictly: both ends are the same
// hoist, so an unknown field is a bug, not an older client.
func DecodeArgs[A any](raw json.RawMessage) (A, error) {
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

// ReadRequest reads the request line, at most MaxRequest bytes.
func ReadRequest(r *bufio.Reader) (Request, error) {
	var req Request
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxRequest {
			return req, fmt.Errorf("request longer than %d bytes", MaxRequest)
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

// Encode is the request line r with args.
func (r Request) Encode(args any) ([]byte, error) {
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

// WriteResult writes a successful response.
func WriteResult(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return json.NewEncoder(w).Encode(Response{OK: true, Result: b})
}

// WriteError writes a failed response.
func WriteError(w io.Writer, err error) {
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
	var ve *VersionError
	if errors.As(err, &ve) {
		re.Version = ve
	}
	var ce *ConfirmError
	if errors.As(err, &ce) {
		re.Confirm = ce
	}
	_ = json.NewEncoder(w).Encode(Response{Error: re}) // the client sees a broken pipe by itself
}

// DecodeResponse reads a Response and decodes its result into v.
func DecodeResponse(b []byte, v any) error {
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("unexpected answer from host: %q", Truncate(string(b), 200))
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

// Truncate cuts s to n bytes, for a message quoted in an error.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
