// Package cache keeps answers in this process's memory and in Redis. It is
// only ever a shortcut: when Redis is down or slow every call to it behaves
// as a miss (entries this process holds in memory still serve), the caller
// reads Postgres, a warning is logged (once per outage), and caching
// resumes by itself when Redis answers again. An entry is never stale,
// only unused, so every process may keep its own copies without telling
// the others: a context window's key names the state it was made from,
// and an entity's entry carries its row's stamp, which Postgres is asked
// for on every read (see Entities).
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/internal/redisclient"
)

// Cache is a cache of byte values: a bounded one in memory in front of
// Redis, which processes share.
type Cache struct {
	rdb     *redis.Client
	local   *otter.Cache[string, localEntry]
	log     *slog.Logger
	timeout time.Duration

	// retry is how long the cache leaves Redis alone after a failure:
	// a call within it misses at once instead of waiting on Redis again;
	// the first call after it tries Redis, the others go on missing until
	// that one has its answer.
	retry time.Duration

	mu        sync.Mutex
	lastErr   error
	downUntil time.Time
}

// retryRedis is how long the cache leaves an unreachable Redis alone.
const retryRedis = time.Second

// entryOverhead is what an entry costs in memory besides its key and
// value (the cache's node, the entry struct, allocation rounding), an
// estimate counted against the memory bound so that small entries do not
// overrun it.
const entryOverhead = 128

// localEntry is a value kept in memory with how long it lives there.
type localEntry struct {
	val []byte
	ttl time.Duration
}

// New connects to the Redis at url (redis://host:port/db) and keeps up to
// about localBytes of the entries it reads or writes in memory too (0:
// none). It does not wait for Redis: a cache that cannot reach it misses.
func New(url string, localBytes int64, log *slog.Logger) (*Cache, error) {
	// Fail fast: a cache that waits is worse than none.
	rdb, err := redisclient.New(url)
	if err != nil {
		return nil, err
	}
	c := &Cache{rdb: rdb, log: log, timeout: 250 * time.Millisecond, retry: retryRedis}
	if localBytes > 0 {
		c.local, err = otter.New(&otter.Options[string, localEntry]{
			MaximumWeight: uint64(localBytes),
			Weigher: func(key string, e localEntry) uint32 {
				return uint32(min(uint64(len(key)+len(e.val)+entryOverhead), math.MaxUint32))
			},
			ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, localEntry]) time.Duration { return e.Value.ttl }),
		})
		if err != nil {
			_ = c.rdb.Close()
			return nil, fmt.Errorf("in-memory cache of %d bytes: %w", localBytes, err)
		}
	}
	return c, nil
}

// Close closes the connections to Redis and stops the memory layer's
// maintenance.
func (c *Cache) Close() error {
	if c.local != nil {
		c.local.StopAllGoroutines()
	}
	return c.rdb.Close()
}

// Get returns the value at key, from memory when this process holds it,
// else from Redis; ok is false on a miss or when Redis is unreachable.
// The caller must not change val.
func (c *Cache) Get(ctx context.Context, key string) (val []byte, ok bool) {
	if c.local != nil {
		if e, ok := c.local.GetIfPresent(key); ok {
			return e.val, true
		}
	}
	if c.away() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		c.healthy()
		return nil, false
	}
	if err != nil {
		c.failed(ctx, err)
		return nil, false
	}
	c.healthy()
	if c.local != nil {
		c.keep(ctx, key)
	}
	return val, true
}

// keep copies the entry at key from Redis into memory for the time it has
// left there. The value and its time to live are read together (MULTI),
// so the time is the value's own and not a later write's: a window whose
// time was cut short by a memory's expiry never lives on here under the
// time of a window written after it. A second round trip costs a hit from
// Redis more, once per entry and process; reading the time with every GET
// cost every miss more (a go-redis pipeline: ~40 us a call against ~12 us
// for a GET alone here).
func (c *Cache) keep(ctx context.Context, key string) {
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	if _, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get, ttl = p.Get(ctx, key), p.PTTL(ctx, key)
		return nil
	}); err != nil {
		return
	}
	if val, err := get.Bytes(); err == nil && ttl.Val() > 0 {
		c.local.Set(key, localEntry{val: val, ttl: ttl.Val()})
	}
}

// Set stores val at key for ttl, in memory and in Redis; failures are
// logged, not returned. The caller must not change val afterwards.
func (c *Cache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) {
	if c.local != nil {
		c.local.Set(key, localEntry{val: val, ttl: ttl})
	}
	if c.away() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Set(ctx, key, val, ttl).Err(); err != nil {
		c.failed(ctx, err)
		return
	}
	c.healthy()
}

// Health pings Redis and returns nil when it answers.
func (c *Cache) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		c.failed(ctx, err)
		return fmt.Errorf("redis: %w", err)
	}
	c.healthy()
	return nil
}

// away reports whether Redis failed less than c.retry ago, so that a
// call should miss without trying it. Past that time it lets one call
// through to try, and keeps the others away until that call's answer.
func (c *Cache) away() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr == nil {
		return false
	}
	now := time.Now()
	if now.Before(c.downUntil) {
		return true
	}
	c.downUntil = now.Add(c.timeout + c.retry)
	return false
}

func (c *Cache) failed(ctx context.Context, err error) {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // the request went away, Redis did not
	}
	c.mu.Lock()
	first := c.lastErr == nil
	c.lastErr = err
	c.downUntil = time.Now().Add(c.retry)
	c.mu.Unlock()
	if first {
		c.log.Warn("redis unreachable: serving from Postgres without the cache", "err", err)
	}
}

func (c *Cache) healthy() {
	c.mu.Lock()
	was := c.lastErr
	c.lastErr = nil
	c.mu.Unlock()
	if was != nil {
		c.log.Info("redis reachable again: caching resumed")
	}
}

// Client is the cache's Redis client, which the process's other users of
// Redis (the rate limits) share: one pool of connections, failing fast.
func (c *Cache) Client() *redis.Client { return c.rdb }
