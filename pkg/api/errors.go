package api

import (
	"errors"
	"fmt"
)

// Code classifies an error that crosses a process boundary.
type Code string

// Error codes of the v1 API.
const (
	CodeInvalidArgument    Code = "invalid_argument"
	CodeNotFound           Code = "not_found"
	CodeAlreadyExists      Code = "already_exists"
	CodeUnknownType        Code = "unknown_type"
	CodeFailedPrecondition Code = "failed_precondition"
	CodeTooLarge           Code = "too_large"
	CodeUnavailable        Code = "unavailable"
	CodeInternal           Code = "internal"
	// CodeUnauthenticated: the HTTP request carries no valid credential and
	// anonymous callers may not do what it asks.
	CodeUnauthenticated Code = "unauthenticated"
	// CodePermissionDenied: the caller is known but its role does not allow it.
	CodePermissionDenied Code = "permission_denied"
	// CodeJobPanic: job code (a callback of the job's master or worker)
	// panicked; that incarnation failed, nothing else did.
	CodeJobPanic Code = "job_panic"
	// CodeJobHung: a job callback did not return within the node's
	// DROVER_CALLBACK_TIMEOUT; that incarnation failed.
	CodeJobHung Code = "job_hung"
	// CodeCrashLoop: the job's masters kept dying with the nodes that ran
	// them; it was quarantined (failed) instead of being moved again.
	CodeCrashLoop Code = "crash_loop"
)

// Error is the coded error of the public API.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is matches another *Error by code, so errors.Is(err, &Error{Code: CodeNotFound}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf builds a coded error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, CodeInternal if it carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError converts any error into a coded one, keeping a code it already has.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// HTTPStatus maps a code to the HTTP status the HTTP API answers with.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalidArgument:
		return 400
	case CodeUnauthenticated:
		return 401
	case CodePermissionDenied:
		return 403
	case CodeNotFound:
		return 404
	case CodeAlreadyExists:
		return 409
	case CodeUnknownType:
		return 422
	case CodeFailedPrecondition:
		return 412
	case CodeTooLarge:
		return 413
	case CodeUnavailable:
		return 503
	}
	return 500
}
