package cache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// Forgetter deletes what a deployment's cache holds of erased entities
// (commands.CacheForgetter): their entries, and every context window of
// the sessions named, in Redis and in this process's memory. No entry is
// ever served stale (see Entities and Windows), so an erased one would
// only lie unused until its time ran out; it is deleted because it holds
// text that must be kept nowhere. The memory of other processes is out of
// reach: their copies are never served, and they drop them within
// entityTTL (windowTTL for windows).
type Forgetter struct {
	cache             *Cache
	entities, windows string
}

// NewForgetter forgets in c the entries of the deployment namespace
// names (see Namespace).
func NewForgetter(c *Cache, namespace string) *Forgetter {
	return &Forgetter{cache: c, entities: entityPrefix(namespace), windows: windowPrefix(namespace)}
}

// ForgetErased deletes the entries of e's users, sessions, messages and
// memories, and the windows of e's Windows sessions. It fails when Redis
// cannot be reached, or the deletion did not finish: the erasure is then
// not complete, and erasing again finishes it.
func (f *Forgetter) ForgetErased(ctx context.Context, e commands.Erased) error {
	var keys []string
	for _, k := range []struct {
		kind domain.Kind
		ids  []string
	}{{domain.KindUser, e.Users}, {domain.KindSession, e.Sessions}, {domain.KindMessage, e.Messages}, {domain.KindMemory, e.Memories}} {
		for _, id := range k.ids {
			keys = append(keys, f.entities+k.kind.String()+":"+id)
		}
	}
	prefixes := make([]string, len(e.Windows))
	for i, s := range e.Windows {
		prefixes[i] = f.windows + s + ":"
	}
	return f.cache.forget(ctx, keys, prefixes)
}

// forgetTimeout bounds one forget in Redis, which may scan many keys.
const forgetTimeout = 10 * time.Second

// forgetBatch is how many keys one scan step looks at or one UNLINK
// deletes.
const forgetBatch = 1000

// forget deletes keys and every key that begins with one of prefixes,
// from memory and from Redis. Unlike the cache's other calls it reports
// Redis failing, also when Redis was away already.
func (c *Cache) forget(ctx context.Context, keys, prefixes []string) error {
	if c.local != nil {
		for _, k := range keys {
			c.local.Invalidate(k)
		}
		if len(prefixes) > 0 {
			var found []string
			for k := range c.local.Keys() {
				for _, p := range prefixes {
					if strings.HasPrefix(k, p) {
						found = append(found, k)
						break
					}
				}
			}
			for _, k := range found {
				c.local.Invalidate(k)
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, forgetTimeout)
	defer cancel()
	if len(prefixes) > 0 {
		// One scan for all: a user's sessions may be many, and each scan
		// walks the whole keyspace.
		common := commonPrefix(prefixes)
		var cursor uint64
		for {
			found, next, err := c.rdb.Scan(ctx, cursor, globEscape(common)+"*", forgetBatch).Result()
			if err != nil {
				c.failed(ctx, err)
				return fmt.Errorf("redis: find the keys of %s*: %w", common, err)
			}
			for _, k := range found {
				for _, p := range prefixes {
					if strings.HasPrefix(k, p) {
						keys = append(keys, k)
						break
					}
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), forgetBatch)
		if err := c.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			c.failed(ctx, err)
			return fmt.Errorf("redis: delete erased entries: %w", err)
		}
		keys = keys[n:]
	}
	c.healthy()
	return nil
}

// commonPrefix is the longest prefix of every one of ps (not empty).
func commonPrefix(ps []string) string {
	common := ps[0]
	for _, p := range ps[1:] {
		n := 0
		for n < len(common) && n < len(p) && common[n] == p[n] {
			n++
		}
		common = common[:n]
	}
	return common
}

// globEscape escapes the characters a Redis MATCH pattern gives a
// meaning to, so that s matches itself only.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}
