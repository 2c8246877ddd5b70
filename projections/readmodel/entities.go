package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Kind is a kind of entity the API reads by id.
type Kind string

// The kinds of entity read by id.
const (
	KindUser    Kind = "user"
	KindSession Kind = "session"
	KindMessage Kind = "message"
	KindMemory  Kind = "memory"
)

// Encoded is one entity as a GET by id serves it.
type Encoded struct {
	// JSON is the body.
	JSON []byte
	// Version is the entity's version, its ETag.
	Version int
	// Stamp names the state of the row JSON was made from: two reads
	// with the same stamp serve the same JSON (see Reader.StampOf).
	Stamp string
	// ExpiresAt is when the entity leaves reads (memories), if ever.
	ExpiresAt *time.Time
	// Cache is "hit" or "miss" when a cache stands in front of the
	// reader, "" when none does.
	Cache string
}

// Encoded reads one entity of a tenant and encodes it as the API serves it.
func (r *Reader) Encoded(ctx context.Context, kind Kind, tenant, id string) (Encoded, error) {
	var (
		v     any
		e     Encoded
		err   error
		extra string
	)
	switch kind {
	case KindUser:
		var u User
		u, err = r.GetUser(ctx, tenant, id)
		v, e.Version = u, u.Version
	case KindSession:
		var s Session
		s, err = r.GetSession(ctx, id)
		v, e.Version, extra = s, s.Version, sessionStamp(s.MessageCount, s.Status)
	case KindMessage:
		var m Message
		m, err = r.GetMessage(ctx, id)
		v, e.Version = m, m.Version
	case KindMemory:
		var m Memory
		m, err = r.GetMemory(ctx, id)
		v, e.Version, e.ExpiresAt = m, m.Version, m.ExpiresAt
	default:
		return Encoded{}, fmt.Errorf("read %s: no such kind of entity", kind)
	}
	if err != nil {
		return Encoded{}, err
	}
	if e.JSON, err = json.Marshal(v); err != nil {
		return Encoded{}, fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	e.Stamp = stamp(e.Version, extra)
	return e, nil
}

// StampOf reads the stamp the entity's row has now, as Encoded would give
// it, with one primary-key lookup that returns no row data. A row changes
// only by its entity's events (each moves its version), by messages
// appended to a session (its message count) and by time (a session's
// status; a memory's expiry, which makes it unreadable), and the stamp
// names each of these, so equal stamps mean equal answers. A rebuild
// rewrites rows without moving versions (and may change them: it exists
// to fix rows), so the stamp ends in "@" and the row's xmin, which every
// rewrite changes. The conditions are those of the full reads: an entity
// a read would not find is domain.ErrNotFound.
func (r *Reader) StampOf(ctx context.Context, kind Kind, tenant, id string) (string, error) {
	var (
		q    string
		args = []any{id}
	)
	switch kind {
	case KindUser:
		q, args = `SELECT version, '', xmin::text FROM users WHERE id = $1 AND tenant = $2`, []any{id, tenant}
	case KindSession:
		q = `SELECT version, message_count || '.' || ` + sessionStatus + `, xmin::text FROM sessions WHERE id = $1`
	case KindMessage:
		q = `SELECT version, '', xmin::text FROM messages WHERE id = $1`
	case KindMemory:
		q = `SELECT version, '', xmin::text FROM memories WHERE id = $1 AND ` + live
	default:
		return "", fmt.Errorf("read %s: no such kind of entity", kind)
	}
	var (
		version     int
		extra, xmin string
	)
	if err := notFound(r.db.QueryRow(ctx, q, args...).Scan(&version, &extra, &xmin), string(kind), id); err != nil {
		return "", err
	}
	return stamp(version, extra) + "@" + xmin, nil
}

func sessionStamp(messageCount int, status string) string {
	return strconv.Itoa(messageCount) + "." + status
}

func stamp(version int, extra string) string {
	if extra == "" {
		return strconv.Itoa(version)
	}
	return strconv.Itoa(version) + "/" + extra
}
