// Package eventstore is ARQ's append-only event log on Postgres.
//
// Every state change is an event appended to a stream (one user, session,
// message or memory). Streams carry a gapless version for optimistic
// concurrency; the whole log carries a commit-safe order that readers can
// tail without ever skipping an event (see Cursor).
package eventstore

import (
	"encoding/json"
	"time"
)

// DefaultTenant is the tenant recorded when a caller names none.
const DefaultTenant = "default"

// Event is an event to append: what a command decided.
type Event struct {
	// ID is a ULID. Leave it empty to have one made; set it to make a retried
	// command idempotent (the retry then writes nothing).
	ID string
	// Type names what happened, e.g. "memory.stored".
	Type string
	// SchemaVersion is the version of Data's shape; 0 means 1.
	SchemaVersion int
	// Data is the event's JSON body; nil means {}.
	Data json.RawMessage
	// Metadata traces the event to the request and caller behind it.
	Metadata Metadata
}

// Metadata traces an event to the request and caller that caused it.
type Metadata struct {
	// CorrelationID is the server's id of the request that appended the
	// event.
	CorrelationID string `json:"correlation_id,omitempty"`
	// ClientRequestID is the id the caller gave that request
	// (X-Request-ID), if any: recorded apart, never the correlation id.
	ClientRequestID string `json:"client_request_id,omitempty"`
	CausationID     string `json:"causation_id,omitempty"`
	Actor           string `json:"actor,omitempty"`
	Tenant          string `json:"tenant"`
	// IdempotencyKey is the Idempotency-Key of the request that appended
	// the event, when it had one: a key's claim left by a server that
	// stopped mid-request is told applied or not by it.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Stream names the stream an append goes to. A stream keeps the type it was
// created with.
type Stream struct {
	ID   string
	Type string
}

// Recorded is an event as the log holds it.
type Recorded struct {
	Position      int64           `json:"position"`
	TransactionID uint64          `json:"transaction_id"`
	EventID       string          `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamType    string          `json:"stream_type"`
	Version       int             `json:"version"`
	Type          string          `json:"event_type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	// Erased says that the event's personal fields were erased: their
	// data key is gone, and Data holds the rest (see Sealer).
	Erased bool `json:"erased,omitempty"`
}

// Cursor is the event's place in the commit-safe order of the log.
func (r Recorded) Cursor() Cursor {
	return Cursor{TransactionID: r.TransactionID, Position: r.Position}
}

// Expected is the version a stream must be at for an append to go ahead.
type Expected struct{ v int64 }

// Any accepts the stream at whatever version it is, including not existing.
func Any() Expected { return Expected{-1} }

// NoStream accepts only a stream that has no events yet.
func NoStream() Expected { return Expected{0} }

// Exactly accepts only a stream at version n; Exactly(0) is NoStream.
func Exactly(n int) Expected {
	if n < 0 {
		n = 0
	}
	return Expected{int64(n)}
}

// String reads as "any", "no stream" or the version number.
func (e Expected) String() string {
	switch {
	case e.v < 0:
		return "any"
	case e.v == 0:
		return "no stream"
	default:
		return itoa(e.v)
	}
}

// AppendResult says where an append's events landed.
type AppendResult struct {
	StreamID string
	// Version is the stream's version after the append.
	Version int
	// Events are the appended events' places in the log, in order.
	Events []Placed
	// Repeated is true when every event id was recorded already and nothing
	// was written: the result is the original append's.
	Repeated bool
}

// Last is the place of the append's last event; commands hand its cursor to
// clients so reads can wait for projections to reach it.
func (r AppendResult) Last() Placed {
	if len(r.Events) == 0 {
		return Placed{}
	}
	return r.Events[len(r.Events)-1]
}

// Placed is where one appended event landed.
type Placed struct {
	EventID    string
	Version    int
	Cursor     Cursor
	RecordedAt time.Time
}
