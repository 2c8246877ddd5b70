// Package owners tells whom an entity belongs to: its tenant, its user,
// and for what lives in a session, that session. The API asks it of every
// request that names an entity, to answer what lies outside the caller's
// scope as not found. It reads the log, the truth, so an entity appended a
// moment ago with Prefer: respond-async is found before the query tables
// hold it; and as an owner never changes, what it found it remembers.
//
// What it remembers is ids alone (tenant, user and session ids), no
// personal data, so an erasure leaves it be: an erased entity keeps its
// owner, and its owner's callers are told it is gone (410), others that
// it was never there (404).
package owners

import (
	"context"
	"encoding/json"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Log is what Resolver reads of the event log (eventstore.Store): first
// events as the log holds them, sealed, as the ids it needs are in the
// clear (no data key is looked up, no personal field opened).
type Log interface {
	StreamOpening(ctx context.Context, streamID string) ([]eventstore.Recorded, error)
	MessageOpening(ctx context.Context, messageID string) ([]eventstore.Recorded, error)
}

// remembered bounds how many owners a Resolver keeps: some 100 bytes
// each.
const remembered = 1 << 16

// Resolver finds owners in the log and remembers them.
type Resolver struct {
	log   Log
	known *lru.Cache[string, domain.Owner]
}

// New returns a Resolver reading log.
func New(log Log) *Resolver {
	// lru.New fails only for a size below 1.
	known, _ := lru.New[string, domain.Owner](remembered)
	return &Resolver{log: log, known: known}
}

// first is what the first event of an entity says of its owner.
type first struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	Tenant    string `json:"tenant"`
}

// Of is the owner of the entity of stream type kind (a domain.Stream*
// constant: user, session, message, memory or context snapshot) with id.
// An id that names none, or a kind that has no owner, is
// domain.ErrNotFound.
func (r *Resolver) Of(ctx context.Context, kind, id string) (domain.Owner, error) {
	key := kind + "-" + id
	if o, ok := r.known.Get(key); ok {
		return o, nil
	}
	o, err := r.find(ctx, kind, id)
	if err != nil {
		return domain.Owner{}, err
	}
	r.known.Add(key, o)
	return o, nil
}

// OfStream is the owner of a stream of the log: that of its entity, and
// for a session's message log or summaries, the session's. An external
// id's claim stream is its tenant's, with no one user (users take turns
// on it). Another stream is domain.ErrNotFound.
func (r *Resolver) OfStream(ctx context.Context, streamID string) (domain.Owner, error) {
	typ, id, err := domain.ParseStreamID(streamID)
	if err != nil {
		return domain.Owner{}, fmt.Errorf("%w: stream %s", domain.ErrNotFound, streamID)
	}
	switch typ {
	case domain.StreamMessageLog, domain.StreamSummary:
		return r.Of(ctx, domain.StreamSession, id)
	case domain.StreamExternalID:
		f, err := r.firstOf(ctx, streamID)
		if err != nil {
			return domain.Owner{}, err
		}
		return domain.Owner{Tenant: tenantOr(f.Tenant)}, nil
	}
	return r.Of(ctx, typ, id)
}

// find reads the owner of kind/id from the log.
func (r *Resolver) find(ctx context.Context, kind, id string) (domain.Owner, error) {
	if _, err := domain.ParseID(id); err != nil {
		return domain.Owner{}, fmt.Errorf("%w: %s %q", domain.ErrNotFound, kind, id)
	}
	var f first
	var err error
	switch kind {
	case domain.StreamUser:
		if f, err = r.firstOf(ctx, domain.StreamID(kind, id)); err != nil {
			return domain.Owner{}, err
		}
		return domain.Owner{Tenant: tenantOr(f.Tenant), UserID: id}, nil
	case domain.StreamSession:
		f, err = r.firstOf(ctx, domain.StreamID(kind, id))
		f.SessionID = id
	case domain.StreamMemory:
		f, err = r.firstOf(ctx, domain.StreamID(kind, id))
		f.SessionID = "" // a memory's source session does not own it
	case domain.StreamSnapshot:
		f, err = r.firstOf(ctx, domain.StreamID(kind, id))
	case domain.StreamMessage:
		var evs []eventstore.Recorded
		if evs, err = r.log.MessageOpening(ctx, id); err == nil {
			if len(evs) == 0 {
				return domain.Owner{}, fmt.Errorf("%w: message %s", domain.ErrNotFound, id)
			}
			err = decode(evs[0], &f)
		}
	default:
		return domain.Owner{}, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
	}
	if err != nil {
		return domain.Owner{}, err
	}
	if f.UserID == "" {
		return domain.Owner{}, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
	}
	user, err := r.Of(ctx, domain.StreamUser, f.UserID)
	if err != nil {
		return domain.Owner{}, fmt.Errorf("owner of %s %s: %w", kind, id, err)
	}
	return domain.Owner{Tenant: user.Tenant, UserID: f.UserID, SessionID: f.SessionID}, nil
}

// firstOf reads what the first event of a stream says of its owner; a
// stream with none is domain.ErrNotFound.
func (r *Resolver) firstOf(ctx context.Context, streamID string) (first, error) {
	evs, err := r.log.StreamOpening(ctx, streamID)
	if err != nil {
		return first{}, fmt.Errorf("find the owner of %s: %w", streamID, err)
	}
	if len(evs) == 0 {
		return first{}, fmt.Errorf("%w: %s", domain.ErrNotFound, streamID)
	}
	var f first
	return f, decode(evs[0], &f)
}

func decode(e eventstore.Recorded, f *first) error {
	if err := json.Unmarshal(e.Data, f); err != nil {
		return fmt.Errorf("find the owner of %s: event %d: %w", e.StreamID, e.Version, err)
	}
	return nil
}

// tenantOr is t, or the default tenant for a user registered before
// tenants were recorded.
func tenantOr(t string) string {
	if t == "" {
		return domain.DefaultTenant
	}
	return t
}
