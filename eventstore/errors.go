package eventstore

import (
	"errors"
	"fmt"
)

// ErrConflict is the sentinel for an append whose expected version did not
// match; errors.Is matches every *ConflictError against it.
var ErrConflict = errors.New("stream version conflict")

// ErrInvalid marks an append the store refuses before touching the database.
var ErrInvalid = errors.New("invalid append")

// ErrEventIDReused is returned when an append repeats some of its event ids
// from an earlier append but not all: that is no retry, and nothing is written.
var ErrEventIDReused = errors.New("event ids partly recorded already")

// ErrOutcomeUnknown is returned for an append whose caller gave up and
// whose statement did not end within the store's outcome wait: it may
// yet be written, or not. Reading the log later tells.
var ErrOutcomeUnknown = errors.New("the append's outcome is unknown: it may yet be written")

// ErrStreamType is returned when an append names a stream with another type
// than the one it was created with.
var ErrStreamType = errors.New("stream type mismatch")

// ErrNoStream is returned by VerifyStream for a stream that has no events
// and no record of ever having had any: there is nothing to verify.
var ErrNoStream = errors.New("stream not found")

// ConflictError carries the stream's current version, so a caller can
// reload and retry.
type ConflictError struct {
	StreamID string
	Expected Expected
	Current  int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stream %s is at version %d, expected %s", e.StreamID, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
