// Package redisclient makes the one kind of Redis client ARQ uses: one
// that fails fast. Redis is a shortcut for the cache and a shared count
// for the rate limits; every request may wait on it, so an unreachable
// Redis must cost a request milliseconds, not go-redis's default retries.
package redisclient

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// New connects to the Redis at url (redis://host:port/db). It does not
// wait for Redis.
func New(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", url, err)
	}
	opt.DialTimeout = 200 * time.Millisecond
	opt.ReadTimeout = 200 * time.Millisecond
	opt.WriteTimeout = 200 * time.Millisecond
	opt.MaxRetries = 0
	opt.DialerRetries = 1 // go-redis dials 5 times, 100ms apart, by default
	return redis.NewClient(opt), nil
}
