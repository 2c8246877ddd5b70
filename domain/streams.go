package domain

import (
	"fmt"
	"strings"
)

// Stream types: one stream per user, session, message and memory, plus a
// session's message log (whose version is the message sequence number) and
// the claim streams that keep external user ids unique per tenant.
const (
	StreamUser       = "user"
	StreamExternalID = "user_external_id"
	StreamSession    = "session"
	StreamMessageLog = "message_log"
	StreamMessage    = "message"
	StreamMemory     = "memory"
	// StreamSummary holds a session's summaries; its version numbers them.
	StreamSummary = "summary"
	// StreamSnapshot holds one context snapshot.
	StreamSnapshot = "context_snapshot"
	// StreamExtraction (extraction.go) holds a user's extraction runs.
)

// streamTypes are the Stream* types, the only ones a domain stream has.
var streamTypes = []string{StreamUser, StreamExternalID, StreamSession, StreamMessageLog,
	StreamMessage, StreamMemory, StreamSummary, StreamSnapshot, StreamExtraction}

// StreamID names the stream of type streamType (a Stream* constant) for id:
// e.g. "memory-01J...". A session's message log is
// "message_log-<session id>"; an external id's claim stream is
// "user_external_id-<name>", the name a keyed hash of the tenant and the
// external id (see vault.Vault.ExternalIDName), so that no stream id
// holds personal data.
func StreamID(streamType, id string) string { return streamType + "-" + id }

// ParseStreamID reads a stream id made by StreamID back into its stream
// type and id: "memory-01J..." is ("memory", "01J..."). No stream type
// holds a "-", so the first one ends it; the id may hold more (a claim's
// name may). The type must be one of the Stream* types and the id not empty.
func ParseStreamID(s string) (streamType, id string, err error) {
	streamType, id, ok := strings.Cut(s, "-")
	if !ok || id == "" {
		return "", "", fmt.Errorf("%w: %q is not a stream id (want <type>-<id>, e.g. memory-<id>)", ErrInvalid, s)
	}
	for _, t := range streamTypes {
		if t == streamType {
			return streamType, id, nil
		}
	}
	return "", "", fmt.Errorf("%w: stream %q: no stream type %q (want one of %s)", ErrInvalid, s, streamType, strings.Join(streamTypes, ", "))
}

// Kind is a kind of entity with a stream of its own, which a client reads
// by id and whose history the log keeps: a user, session, message or
// memory. Its name is its stream's type, so the two cannot disagree; the
// readers of the log, the query tables, the cache and the API all name an
// entity's kind by it.
type Kind struct{ s string }

// The kinds of entity.
var (
	KindUser    = Kind{StreamUser}
	KindSession = Kind{StreamSession}
	KindMessage = Kind{StreamMessage}
	KindMemory  = Kind{StreamMemory}
)

// kinds are every Kind, in the order they are listed to users.
var kinds = []Kind{KindUser, KindSession, KindMessage, KindMemory}

// ParseKind reads a kind by name ("user", "session", "message" or
// "memory").
func ParseKind(s string) (Kind, error) {
	for _, k := range kinds {
		if k.s == s {
			return k, nil
		}
	}
	return Kind{}, fmt.Errorf("%w: kind %q (want user, session, message or memory)", ErrInvalid, s)
}

// ParseEntityStreamID reads the stream id of an entity: "memory-01J..." is
// memory 01J.... A stream of another type (a session's message log, a
// summary) is refused, as ParseKind refuses its type.
func ParseEntityStreamID(s string) (Kind, string, error) {
	streamType, id, err := ParseStreamID(s)
	if err != nil {
		return Kind{}, "", err
	}
	kind, err := ParseKind(streamType)
	if err != nil {
		return Kind{}, "", fmt.Errorf("stream %q: %w", s, err)
	}
	return kind, id, nil
}

// String is the kind's name, which is also its stream's type.
func (k Kind) String() string { return k.s }

// IsZero reports whether k was never set.
func (k Kind) IsZero() bool { return k.s == "" }

// StreamID names the stream of the entity of kind k with id: e.g.
// KindMemory.StreamID("01J...") is "memory-01J...".
func (k Kind) StreamID(id string) string { return StreamID(k.s, id) }
