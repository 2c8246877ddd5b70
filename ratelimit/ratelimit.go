// Package ratelimit counts requests against limits kept in Redis, which
// every instance shares, with the GCRA (generic cell rate algorithm) of
// github.com/go-redis/redis_rate. A process takes a caller's requests
// from Redis a slice at a time and spends the slice in memory, so a busy
// caller costs Redis one call per slice, not one per request (see
// lease.go). While Redis cannot be reached each process holds the same
// limits alone, in its own memory (golang.org/x/time/rate): a caller then
// gets up to the limit from each instance, never none.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limit is how many requests a caller may send.
type Limit struct {
	// Rate is how many requests a second go through over time.
	Rate int
	// Burst is how many may come at once, after a quiet time.
	Burst int
}

// Result is the answer to one request.
type Result struct {
	Allowed bool
	// Remaining is how many more requests would go through now.
	Remaining int
	// RetryAfter is how long until a request goes through again (0 when
	// this one did).
	RetryAfter time.Duration
	// ResetAfter is how long until the whole burst is available again.
	ResetAfter time.Duration
}

// localKeys bounds the callers whose counts a process keeps in memory
// while Redis is away; the least recently seen are forgotten first.
const localKeys = 1 << 16

// retryRedis is how long the limiter leaves an unreachable Redis alone
// before it tries again.
const retryRedis = time.Second

// Limiter counts requests in Redis, or in memory while Redis is away.
type Limiter struct {
	rdb     *redis.Client
	gcra    *redis_rate.Limiter
	prefix  string
	log     *slog.Logger
	timeout time.Duration

	mu        sync.Mutex
	leases    *lru.Cache[string, *lease]
	local     *lru.Cache[string, *rate.Limiter]
	down      bool
	downUntil time.Time
}

// New counts in the Redis of rdb (a client that fails fast, see
// internal/redisclient; its owner closes it), keeping its counts under
// namespace (the deployment's; see app.RedisNamespace).
func New(rdb *redis.Client, namespace string, log *slog.Logger) (*Limiter, error) {
	local, err := lru.New[string, *rate.Limiter](localKeys)
	if err != nil {
		return nil, fmt.Errorf("local limiters: %w", err)
	}
	leases, err := lru.New[string, *lease](localKeys)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return &Limiter{rdb: rdb, gcra: redis_rate.NewLimiter(rdb), prefix: namespace + ":", log: log,
		timeout: 250 * time.Millisecond, leases: leases, local: local}, nil
}

// Allow counts one request of the caller key against lim. It spends the
// caller's lease, takes a new one from Redis when that is spent, and
// counts in this process's memory when Redis cannot answer.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) Result {
	if lim.Rate <= 0 {
		return Result{Allowed: true, Remaining: lim.Burst}
	}
	lim.Burst = max(lim.Burst, 1)
	if !l.away() {
		ls := l.leaseOf(key)
		ls.mu.Lock()
		defer ls.mu.Unlock()
		res, err := ls.allow(time.Now(), lim, func(n int) (*redis_rate.Result, error) {
			ctx, cancel := context.WithTimeout(ctx, l.timeout)
			defer cancel()
			res, err := l.gcra.AllowAtMost(ctx, l.prefix+key, redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: time.Second}, n)
			if err != nil {
				l.failed(ctx, err)
				return nil, err
			}
			l.healthy()
			return res, nil
		})
		if err == nil {
			return res
		}
	}
	return l.allowLocal(key, lim, time.Now())
}

// leaseOf returns the caller key's lease, a new one if it has none.
func (l *Limiter) leaseOf(key string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.leases.Get(key)
	if !ok {
		ls = &lease{}
		l.leases.Add(key, ls)
	}
	return ls
}

// allowLocal counts the request in this process's memory. A caller's
// limit may change between its requests (a tenant's limits are set at
// any time): its bucket keeps what it holds and takes the new limit.
func (l *Limiter) allowLocal(key string, lim Limit, now time.Time) Result {
	l.mu.Lock()
	lm, ok := l.local.Get(key)
	if !ok {
		lm = rate.NewLimiter(rate.Limit(lim.Rate), lim.Burst)
		l.local.Add(key, lm)
	} else if lm.Limit() != rate.Limit(lim.Rate) || lm.Burst() != lim.Burst {
		lm.SetLimitAt(now, rate.Limit(lim.Rate))
		lm.SetBurstAt(now, lim.Burst)
	}
	l.mu.Unlock()
	r := lm.ReserveN(now, 1)
	if delay := r.DelayFrom(now); !r.OK() || delay > 0 {
		r.CancelAt(now)
		return Result{RetryAfter: max(delay, time.Millisecond), ResetAfter: fill(lim, lm.TokensAt(now))}
	}
	tokens := lm.TokensAt(now)
	return Result{Allowed: true, Remaining: int(math.Max(math.Floor(tokens), 0)), ResetAfter: fill(lim, tokens)}
}

// fill is how long a bucket holding tokens takes to fill up.
func fill(lim Limit, tokens float64) time.Duration {
	return time.Duration((float64(lim.Burst) - tokens) / float64(lim.Rate) * float64(time.Second))
}

// away reports whether Redis failed less than retryRedis ago. Past that
// it lets one call through to try it, keeping the others away until that
// one has its answer.
func (l *Limiter) away() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return false
	}
	now := time.Now()
	if now.Before(l.downUntil) {
		return true
	}
	l.downUntil = now.Add(l.timeout + retryRedis)
	return false
}

func (l *Limiter) failed(ctx context.Context, err error) {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // the request went away, Redis did not
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		l.log.Warn("redis unreachable: rate limits are held by each process alone", "err", err)
	}
	l.down, l.downUntil = true, time.Now().Add(retryRedis)
}

func (l *Limiter) healthy() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		l.log.Info("redis back: rate limits are shared again")
	}
	l.down = false
}
