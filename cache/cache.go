// Package cache keeps answers in Redis. It is only ever a shortcut: when
// Redis is down or slow every call behaves as a miss, the caller reads
// Postgres, a warning is logged (once per outage), and caching resumes by
// itself when Redis answers again. Callers make keys that name the state
// they were computed from, so an entry is never stale, only unused.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is a Redis-backed cache of byte values.
type Cache struct {
	rdb     *redis.Client
	log     *slog.Logger
	timeout time.Duration

	mu      sync.Mutex
	lastErr error
}

// New connects to the Redis at url (redis://host:port/db). It does not
// wait for Redis: a cache that cannot reach it misses.
func New(url string, log *slog.Logger) (*Cache, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", url, err)
	}
	// Fail fast: a cache that waits is worse than none.
	opt.DialTimeout = 200 * time.Millisecond
	opt.ReadTimeout = 200 * time.Millisecond
	opt.WriteTimeout = 200 * time.Millisecond
	opt.MaxRetries = 0
	return &Cache{rdb: redis.NewClient(opt), log: log, timeout: 250 * time.Millisecond}, nil
}

// Close closes the connections.
func (c *Cache) Close() error { return c.rdb.Close() }

// Get returns the value at key; ok is false on a miss or when Redis is
// unreachable.
func (c *Cache) Get(ctx context.Context, key string) (val []byte, ok bool) {
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
	return val, true
}

// Set stores val at key for ttl; failures are logged, not returned.
func (c *Cache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) {
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

func (c *Cache) failed(ctx context.Context, err error) {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // the request went away, Redis did not
	}
	c.mu.Lock()
	first := c.lastErr == nil
	c.lastErr = err
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
