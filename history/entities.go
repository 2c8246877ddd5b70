package history

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Change is one field an event changed.
type Change struct {
	Before any `json:"before"`
	After  any `json:"after"`
}

// Entry is one event in an entity's history: when, who, through which
// request, what, and the fields it changed.
type Entry struct {
	Version    int       `json:"version"`
	EventID    string    `json:"event_id"`
	Type       string    `json:"event_type"`
	RecordedAt time.Time `json:"recorded_at"`
	Actor      string    `json:"actor"`
	RequestID  string    `json:"request_id"`
	// ClientRequestID is the caller's own id of that request
	// (X-Request-ID), when it gave one.
	ClientRequestID string            `json:"client_request_id,omitempty"`
	Position        int64             `json:"position"`
	Changes         map[string]Change `json:"changes"`
	// Erased says that the event's personal data was erased (see
	// eventstore.Recorded): Changes holds none of it.
	Erased bool `json:"erased,omitempty"`
}

// step is one event of an entity with the entity's version after it.
type step struct {
	rec     eventstore.Recorded
	version int
}

// steps loads an entity's events in order, each with its version.
func (r *Reader) steps(ctx context.Context, kind domain.Kind, id string) ([]step, error) {
	var recs []eventstore.Recorded
	offset := 0
	var err error
	switch kind {
	case domain.KindUser, domain.KindSession, domain.KindMemory:
		recs, err = r.store.ReadStream(ctx, kind.StreamID(id), 1)
	case domain.KindMessage:
		// Version 1 is the appended event in the session's log; the
		// message's own stream (edits, redaction) follows from 2.
		if recs, err = r.store.MessageAppendedEvent(ctx, id); err == nil && len(recs) == 1 {
			var own []eventstore.Recorded
			own, err = r.store.ReadStream(ctx, domain.KindMessage.StreamID(id), 1)
			recs = append(recs, own...)
			offset = 1
		}
	default:
		return nil, fmt.Errorf("%w: no history of kind %q", domain.ErrInvalid, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("read history of %s %s: %w", kind, id, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
	}
	out := make([]step, len(recs))
	for i, rec := range recs {
		v := rec.Version + offset
		if kind == domain.KindMessage && i == 0 {
			v = 1
		}
		out[i] = step{rec: rec, version: v}
	}
	return out, nil
}

// erased tells whether the personal data of the entity whose events steps
// are was erased: one of them reads erased (its data key is gone: the
// entity's own, or its user's), or one records the entity's erasure.
func erased(steps []step) bool {
	for _, s := range steps {
		switch {
		case s.rec.Erased, s.rec.Type == domain.UserErased, s.rec.Type == domain.MessageErased, s.rec.Type == domain.MemoryErased:
			return true
		}
	}
	return false
}

// personalFields are the fields of a rendered entity that hold personal
// data (see domain.PersonalData): an erased entity's history shows none.
var personalFields = map[string]bool{"external_id": true, "name": true, "email": true, "metadata": true, "title": true, "content": true, "tags": true}

// folder folds an entity's events and renders its state as fields.
type folder struct {
	apply func(domain.Event, int, time.Time)
	// render gives the state's fields as they read at time at (a
	// session's status depends on it; zero: at its last change).
	render func(at time.Time) map[string]any
	// seq sets a message's sequence number (its appended event's
	// version); nil for other kinds.
	seq func(int)
}

func newFolder(kind domain.Kind) folder {
	switch kind {
	case domain.KindUser:
		u := &domain.User{}
		return folder{apply: u.Apply, render: func(time.Time) map[string]any {
			return map[string]any{"id": u.ID(), "external_id": u.ExternalID(), "name": u.Name(), "email": u.Email(),
				"metadata": u.Metadata(), "deleted": !u.Exists(), "version": u.Version(), "created_at": u.CreatedAt(), "updated_at": u.UpdatedAt()}
		}}
	case domain.KindSession:
		s := &domain.Session{}
		return folder{apply: s.Apply, render: func(at time.Time) map[string]any {
			if at.IsZero() {
				at = s.UpdatedAt()
			}
			return map[string]any{"id": s.ID(), "user_id": s.UserID(), "title": s.Title(), "metadata": s.Metadata(),
				"status": s.State(at), "expires_at": s.ExpiresAt(), "version": s.Version(), "created_at": s.CreatedAt(), "updated_at": s.UpdatedAt()}
		}}
	case domain.KindMessage:
		m := &domain.Message{}
		return folder{apply: m.Apply, seq: m.SetSeq, render: func(time.Time) map[string]any {
			return map[string]any{"id": m.ID(), "session_id": m.SessionID(), "user_id": m.UserID(), "seq": m.Seq(), "role": m.Role(),
				"content": m.Content(), "name": m.Name(), "metadata": m.Metadata(), "tokens": m.Tokens(), "embedding_dim": len(m.Embedding()), "redacted": m.Redacted(),
				"version": m.Version(), "created_at": m.CreatedAt(), "updated_at": m.UpdatedAt()}
		}}
	default:
		m := &domain.Memory{}
		return folder{apply: m.Apply, render: func(time.Time) map[string]any {
			return map[string]any{"id": m.ID(), "user_id": m.UserID(), "type": m.Type(), "content": m.Content(), "importance": m.Importance(),
				"tags": m.Tags(), "metadata": m.Metadata(), "source_session_id": nullable(m.SourceSessionID()), "source_message_id": nullable(m.SourceMessageID()),
				"tokens": m.Tokens(), "expires_at": m.ExpiresAt(), "embedding_dim": len(m.Embedding()), "deleted": !m.Exists(), "version": m.Version(),
				"created_at": m.CreatedAt(), "updated_at": m.UpdatedAt()}
		}}
	}
}

// History is every event of an entity, oldest first, each with the fields
// it changed (before and after; version and updated_at left out). Of an
// erased entity (or one of an erased user) every event is still listed,
// those erased marked so, and no change of a personal field is shown.
func (r *Reader) History(ctx context.Context, kind domain.Kind, id string) ([]Entry, error) {
	steps, err := r.steps(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	gone := erased(steps)
	f := newFolder(kind)
	before := map[string]any{}
	out := make([]Entry, 0, len(steps))
	for _, s := range steps {
		e, err := domain.DecodeEvent(s.rec.Type, s.rec.SchemaVersion, s.rec.Data)
		if err != nil {
			return nil, fmt.Errorf("history of %s %s: event %s: %w", kind, id, s.rec.EventID, err)
		}
		f.apply(e, s.version, s.rec.RecordedAt)
		if f.seq != nil && s.version == 1 {
			f.seq(s.rec.Version)
		}
		after := f.render(time.Time{})
		changes := map[string]Change{}
		for k, v := range after {
			if k == "version" || k == "updated_at" || (gone && personalFields[k]) {
				continue
			}
			if old, ok := before[k]; !ok || !reflect.DeepEqual(old, v) {
				if ok || !isZero(v) {
					changes[k] = Change{Before: old, After: v}
				}
			}
		}
		before = after
		out = append(out, Entry{Version: s.version, EventID: s.rec.EventID, Type: s.rec.Type, RecordedAt: s.rec.RecordedAt,
			Actor: s.rec.Metadata.Actor, RequestID: s.rec.Metadata.CorrelationID, ClientRequestID: s.rec.Metadata.ClientRequestID, Position: s.rec.Position, Erased: s.rec.Erased, Changes: changes})
	}
	return out, nil
}

// At is an entity as it was at version (if > 0) or at time asOf (if not
// nil), folded from the log. An entity whose data was erased, or whose
// user's was, is domain.ErrErased at every version and time: what it
// held then is gone.
func (r *Reader) At(ctx context.Context, kind domain.Kind, id string, version int, asOf *time.Time) (map[string]any, error) {
	steps, err := r.steps(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	if erased(steps) {
		return nil, fmt.Errorf("%w: %s %s", domain.ErrErased, kind, id)
	}
	f := newFolder(kind)
	n := 0
	for _, s := range steps {
		if (version > 0 && s.version > version) || (asOf != nil && s.rec.RecordedAt.After(*asOf)) {
			break
		}
		e, err := domain.DecodeEvent(s.rec.Type, s.rec.SchemaVersion, s.rec.Data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: event %s: %w", kind, id, s.rec.EventID, err)
		}
		f.apply(e, s.version, s.rec.RecordedAt)
		if f.seq != nil && s.version == 1 {
			f.seq(s.rec.Version)
		}
		n++
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: %s %s did not exist then", domain.ErrNotFound, kind, id)
	case version > 0 && steps[n-1].version != version:
		return nil, fmt.Errorf("%w: %s %s has no version %d", domain.ErrNotFound, kind, id, version)
	}
	if asOf == nil {
		return f.render(time.Time{}), nil
	}
	state := f.render(*asOf)
	if kind == domain.KindUser {
		return state, nil
	}
	// A user's deletion ends everything of theirs without an event in
	// its streams: as of a time after it, the entity was gone
	// (deleted_with_user; a session's status is "deleted", a memory is
	// deleted).
	uid, _ := state["user_id"].(string)
	gone, err := r.userGone(ctx, uid, *asOf)
	if errors.Is(err, domain.ErrErased) {
		return nil, fmt.Errorf("%w: %s %s: its user was erased", domain.ErrErased, kind, id)
	}
	if err != nil {
		return nil, err
	}
	state["deleted_with_user"] = gone
	if gone {
		switch kind {
		case domain.KindSession:
			state["status"] = "deleted"
		case domain.KindMemory:
			state["deleted"] = true
		}
	}
	return state, nil
}

// userGone tells whether a user had been deleted by time at: the user as
// At folds it then.
func (r *Reader) userGone(ctx context.Context, userID string, at time.Time) (bool, error) {
	user, err := r.At(ctx, domain.KindUser, userID, 0, &at)
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil // not registered by then
	}
	if err != nil {
		return false, err
	}
	deleted, _ := user["deleted"].(bool)
	return deleted, nil
}

func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.IsZero() || (rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice) && rv.Len() == 0
}

// nullable is s, or nil for "" (null in JSON, as the live reads answer an
// id that is not set).
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
