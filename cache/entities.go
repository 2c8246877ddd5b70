package cache

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// EntitySource reads single entities from the query tables: the stamp of
// one's row as it is now, cheaply, and the whole of it, encoded.
type EntitySource interface {
	StampOf(ctx context.Context, kind domain.Kind, tenant, id string) (string, error)
	Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error)
}

// entityShape names the JSON shape of the entities kept; it changes when
// the API's body of a user, session, message or memory changes, so that
// entries written by another build are never served.
const entityShape = "v1"

// entityTTL bounds how long an unread entry stays in Redis.
const entityTTL = 10 * time.Minute

// Entities reads users, sessions, messages and memories by id through
// the cache (memory, then Redis). Each read asks Postgres for the row's
// stamp (a primary-key lookup returning no row data) while it fetches the
// entity's entry from the cache,
// and serves the entry only when it was made from a row with that stamp;
// else it reads the row and keeps it under the row's own stamp. Postgres
// decides on every read whether the entity exists and in which state, so
// an entry is never served stale: not after a write (in this process or
// any other), a delete or an expiry, nor after Redis was away.
type Entities struct {
	src    EntitySource
	cache  *Cache
	prefix string
	now    func() time.Time
}

// NewEntities reads src through c. namespace keeps apart the entries of
// deployments sharing one Redis (see Namespace).
func NewEntities(src EntitySource, c *Cache, namespace string) *Entities {
	return &Entities{src: src, cache: c, prefix: entityPrefix(namespace), now: time.Now}
}

// Encoded reads one entity, from the cache when it holds the entity as
// Postgres has it now.
func (e *Entities) Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error) {
	key := e.prefix + kind.String() + ":" + id
	// The two round trips overlap: a hit costs the slower of them.
	got := make(chan []byte, 1)
	go func() {
		val, _ := e.cache.Get(ctx, key)
		got <- val
	}()
	stamp, err := e.src.StampOf(ctx, kind, tenant, id)
	entry := <-got
	if err != nil {
		return readmodel.Encoded{}, err
	}
	if enc, ok := decodeEntry(entry, stamp); ok {
		enc.Cache = "hit"
		return enc, nil
	}
	enc, err := e.src.Encoded(ctx, kind, tenant, id)
	if err != nil {
		return readmodel.Encoded{}, err
	}
	// The row's xmin (see Reader.StampOf) is the one read before the row:
	// if the row was rewritten in between, the entry's stamp pairs the new
	// row with the old xmin, which no later stamp has, so it is never
	// served; it can never pair an old row with a new xmin.
	if _, xmin, ok := strings.Cut(stamp, "@"); ok {
		enc.Stamp += "@" + xmin
	}
	ttl := entityTTL
	if enc.ExpiresAt != nil {
		ttl = min(ttl, enc.ExpiresAt.Sub(e.now()))
	}
	if ttl > 0 {
		e.cache.Set(ctx, key, encodeEntry(enc), ttl)
	}
	enc.Cache = "miss"
	return enc, nil
}

// An entry is "<stamp>\n<version>\n<json>".
func encodeEntry(enc readmodel.Encoded) []byte {
	b := make([]byte, 0, len(enc.Stamp)+len(enc.JSON)+16)
	b = append(b, enc.Stamp...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(enc.Version), 10)
	b = append(b, '\n')
	return append(b, enc.JSON...)
}

// decodeEntry returns the entity an entry holds when it was made from a
// row with stamp.
func decodeEntry(entry []byte, stamp string) (readmodel.Encoded, bool) {
	s, rest, ok := bytes.Cut(entry, []byte{'\n'})
	if !ok || string(s) != stamp {
		return readmodel.Encoded{}, false
	}
	v, body, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return readmodel.Encoded{}, false
	}
	version, err := strconv.Atoi(string(v))
	if err != nil {
		return readmodel.Encoded{}, false
	}
	// The body is the cached entry's own memory, shared by every reader
	// of it: capped, so that an append by one cannot write into it.
	return readmodel.Encoded{JSON: body[:len(body):len(body)], Version: version, Stamp: stamp}, true
}
