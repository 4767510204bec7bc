// Package usererr defines the error type meant for the person at the
// terminal: it says what went wrong and, where there is one, what to do.
// Internal errors stay plain wrapped errors; the CLI prints a usererr.Error
// with its hint and maps it to exit code 1.
package usererr

import (
	"errors"
	"fmt"
)

// Error is an error written for users. Msg says what and where; Hint, when
// set, says what to do about it. Err keeps the cause for errors.Is/As.
type Error struct {
	Msg  string
	Hint string
	Err  error
}

// New returns an Error with a formatted message.
func New(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error whose message is formatted and whose cause is err.
// The cause's text is appended so that nothing is hidden from the user.
func Wrap(err error, format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: err}
}

// WithHint sets the hint and returns e, for chaining.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

func (e *Error) Error() string {
	if e.Err != nil {
		if cause := e.Err.Error(); cause != "" {
			return e.Msg + ": " + cause
		}
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// HintOf returns the hint of the first Error in err's chain, or "".
func HintOf(err error) string {
	var ue *Error
	for errors.As(err, &ue) {
		if ue.Hint != "" {
			return ue.Hint
		}
		if ue.Err == nil {
			return ""
		}
		err = ue.Err
	}
	return ""
}

// Is reports whether err's chain holds an Error.
func Is(err error) bool {
	var ue *Error
	return errors.As(err, &ue)
}
