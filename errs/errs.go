// Package errs carries raijin's exit codes with an error: what failed, and what
// the user can do about it.
package errs

import (
	"errors"
	"fmt"
)

// Exit codes, as documented in the README.
const (
	CodeFailed = 1 // the deploy or command failed
	CodeUsage  = 2 // bad usage or bad configuration
	CodeLocked = 3 // the deploy lock is held by someone else
	CodeHealth = 4 // a health check failed and the previous version was restored
)

// Error is an error with an exit code and an optional hint saying what to do.
type Error struct {
	Code int
	Msg  string
	Hint string
	Err  error
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef is a configuration or usage error (exit 2).
func Usagef(hint string, format string, args ...any) error {
	return &Error{Code: CodeUsage, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Failedf is a failed command (exit 1).
func Failedf(hint string, format string, args ...any) error {
	return &Error{Code: CodeFailed, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Code returns the exit code for err: the code of the first *Error in its chain,
// else 1.
func Code(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeFailed
}

// Hint returns the hint of the first *Error in err's chain that has one.
func Hint(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}

// WithCode wraps err so that it exits with code, keeping its message.
func WithCode(code int, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err, Hint: hint}
}
