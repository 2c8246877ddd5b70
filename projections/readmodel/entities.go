package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/arq-memory/arq/domain"
)

// Encoded is one entity as a GET by id serves it.
type Encoded struct {
	// JSON is the body. It may be a cache's own memory, shared with
	// other readers: read it, never change it.
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
func (r *Reader) Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (Encoded, error) {
	var (
		v     any
		e     Encoded
		err   error
		extra string
	)
	switch kind {
	case domain.KindUser:
		var u User
		u, err = r.GetUser(ctx, tenant, id)
		v, e.Version = u, u.Version
	case domain.KindSession:
		var s Session
		s, err = r.GetSession(ctx, id)
		v, e.Version, extra = s, s.Version, sessionStamp(s.MessageCount, s.Status)
	case domain.KindMessage:
		var m Message
		m, err = r.GetMessage(ctx, id)
		v, e.Version = m, m.Version
	case domain.KindMemory:
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

func sessionStamp(messageCount int, status string) string {
	return strconv.Itoa(messageCount) + "." + status
}

func stamp(version int, extra string) string {
	if extra == "" {
		return strconv.Itoa(version)
	}
	return strconv.Itoa(version) + "/" + extra
}
