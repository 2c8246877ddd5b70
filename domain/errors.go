package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds of the domain. Adapters map them to their own terms (HTTP
// statuses in api); errors.Is matches a wrapped or detailed error to them.
var (
	// ErrNotFound: the entity does not exist, or no longer does.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the entity's state forbids the command (a closed
	// session, an external id taken).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the command's input is wrong; see *ValidationError.
	ErrInvalid = errors.New("invalid input")
)

// FieldError names one wrong field of a command and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every wrong field of a command at once.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Add records a wrong field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e if it holds any field, nil otherwise.
func (e *ValidationError) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// conflictf is an ErrConflict with a reason.
func conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

// notFoundf is an ErrNotFound with a reason.
func notFoundf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, args...))
}

// ErrErased: the entity, or the person it belongs to, was erased (see
// personal.go). Unlike ErrNotFound it is final: the id is never served
// again, and nothing can be kept for it.
var ErrErased = errors.New("erased")

// erasedf is an ErrErased with a reason.
func erasedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrErased, fmt.Sprintf(format, args...))
}

// checkErasure refuses a reason for an erasure that is none of the
// Erased* reasons.
func checkErasure(reason string) error {
	if reason != ErasedOnRequest && reason != ErasedForRetention {
		v := &ValidationError{}
		v.Add("reason", "must be %s or %s", ErasedOnRequest, ErasedForRetention)
		return v
	}
	return nil
}

// ErrStale: the caller named a version (If-Match) the entity is no longer
// at. Unlike ErrConflict, retrying after a reload may succeed.
var ErrStale = errors.New("stale version")
