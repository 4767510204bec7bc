package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Every `hoist host` command writes one Response as JSON on stdout, so
// that the client tells a host's answer from an SSH or shell failure, and
// gets structured errors (a held lock, a failed health check) back.
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
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap exposes the structured cause, so errors.As finds *LockedError
// and *HealthError on the client too.
func (e *RemoteError) Unwrap() error {
	switch {
	case e.Lock != nil:
		return &LockedError{Lock: *e.Lock}
	case e.Health != nil:
		return e.Health
	}
	return nil
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
func WriteError(w io.Writer, err error) error {
	re := &RemoteError{Message: err.Error()}
	var le *LockedError
	if errors.As(err, &le) {
		re.Lock = &le.Lock
	}
	var he *HealthError
	if errors.As(err, &he) {
		re.Health = he
	}
	return json.NewEncoder(w).Encode(Response{Error: re})
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
