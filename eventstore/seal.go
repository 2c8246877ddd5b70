package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/oklog/ulid/v2"
)

// Sealer keeps people's data out of the log's plain text (crypto-shredding,
// see package vault): it encrypts the personal fields of events before
// they are appended, under data keys kept apart from the log, and opens
// them when they are read. The log and its hash chain hold only the
// ciphertext, so deleting a data key erases what it sealed without
// rewriting an event.
type Sealer interface {
	// Seal replaces, in place, the personal fields of the appends' events
	// (whose ids are set) by their ciphertext. The Keep it returns, if
	// any, runs in the append's transaction before the events are written.
	Seal(ctx context.Context, appends []StreamAppend) (*Keep, error)
	// Open puts back, in place, the personal fields of events read from
	// the log, and marks Erased those whose data key is gone.
	Open(ctx context.Context, events []Recorded) error
}

// Keep is a statement an append runs in its transaction before writing its
// events: it stores the data keys they were sealed with, so that no event
// is committed without the key that opens it. It refuses the append by
// raising SQLSTATE RefusedCode (the person it belongs to was erased); the
// append then fails with Refused.
type Keep struct {
	SQL     string
	Args    []any
	Refused error
}

// RefusedCode is the SQLSTATE by which a Keep statement refuses its append.
const RefusedCode = "AQ003"

// WithSealer seals what the store appends and opens what its reads return
// (ReadRaw and Export excepted). Without it events are stored as given.
func WithSealer(x Sealer) Option { return func(s *Store) { s.sealer = x } }

// seal gives the appends' events their ids and has the sealer seal them,
// on copies: the caller's appends are left as they were.
func (s *Store) seal(ctx context.Context, appends []StreamAppend) ([]StreamAppend, *Keep, error) {
	if s.sealer == nil {
		return appends, nil, nil
	}
	out := make([]StreamAppend, len(appends))
	for i, a := range appends {
		out[i] = a
		out[i].Events = make([]Event, len(a.Events))
		for j, e := range a.Events {
			if e.ID == "" {
				e.ID = newEventID()
			}
			out[i].Events[j] = e
		}
	}
	keep, err := s.sealer.Seal(ctx, out)
	if err != nil {
		return nil, nil, fmt.Errorf("append: seal: %w", err)
	}
	return out, keep, nil
}

// open opens events read from the log, if the store seals.
func (s *Store) open(ctx context.Context, events []Recorded) ([]Recorded, error) {
	if s.sealer == nil || len(events) == 0 {
		return events, nil
	}
	if err := s.sealer.Open(ctx, events); err != nil {
		return nil, fmt.Errorf("read events: open: %w", err)
	}
	return events, nil
}

// Open opens events that a reader selected from the log itself (with
// Columns and ScanRecorded), as the store's own reads do.
func (s *Store) Open(ctx context.Context, events []Recorded) error {
	_, err := s.open(ctx, events)
	return err
}

// refusal is k's Refused when err is its statement's refusal.
func refusal(k *Keep, err error) error {
	var pgErr *pgconn.PgError
	if k != nil && errors.As(err, &pgErr) && pgErr.Code == RefusedCode {
		return fmt.Errorf("append: %w", k.Refused)
	}
	return nil
}

// newEventID is the id of an event appended without one.
func newEventID() string { return ulid.Make().String() }

// Opener opens events read from the log (see Sealer.Open): readers that
// select events themselves, such as the projections, take one.
type Opener interface {
	Open(ctx context.Context, events []Recorded) error
}
