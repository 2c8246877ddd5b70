package ratelimit

import (
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// leaseLife is how long a process keeps the requests it took from Redis
// for a caller and has not spent; past it they lapse, so what a caller
// is let through in any stretch of time is at most its limit over that
// stretch and one second more.
const leaseLife = time.Second

// sliceOf is how many requests a process takes from Redis for a caller at
// a time: a tenth of a second of its rate, at most half its burst, at
// least one. A caller at a low limit is counted in Redis request by
// request, as before; one at a high limit costs Redis ten calls a second
// at most per process, whatever its load.
func sliceOf(lim Limit) int {
	return max(1, min(lim.Rate/10, lim.Burst/2))
}

// lease is what a process holds of one caller's limit: requests taken
// from Redis and not yet spent, or, after Redis refused, the time until
// which it need not ask again. Its mutex is held across the call to
// Redis, so a caller's concurrent requests wait for one call, not send
// one each.
type lease struct {
	mu sync.Mutex
	// lim is the limit the lease was taken under; another one (a
	// tenant's limits changed) drops it.
	lim Limit
	// tokens are the requests taken and not spent, until lapse.
	tokens int
	lapse  time.Time
	// remaining is what Redis had left after the lease was taken, and
	// whole when its bucket is full again.
	remaining int
	whole     time.Time
	// refusedUntil is when Redis said the next request may go.
	refusedUntil time.Time
}

// allow counts one request at now against lim: from the lease while it
// holds, else from a new one that take gets from Redis (at most n
// requests). An error of take is returned as is, the lease left empty.
// The caller holds ls.mu.
func (ls *lease) allow(now time.Time, lim Limit, take func(n int) (*redis_rate.Result, error)) (Result, error) {
	if ls.lim != lim {
		ls.lim, ls.tokens, ls.refusedUntil = lim, 0, time.Time{}
	}
	if ls.tokens > 0 && now.Before(ls.lapse) {
		ls.tokens--
		return ls.granted(now), nil
	}
	if now.Before(ls.refusedUntil) {
		return Result{RetryAfter: ls.refusedUntil.Sub(now), ResetAfter: max(ls.whole.Sub(now), 0)}, nil
	}
	ls.tokens = 0
	res, err := take(sliceOf(lim))
	if err != nil {
		return Result{}, err
	}
	ls.whole = now.Add(max(res.ResetAfter, 0))
	if res.Allowed < 1 {
		wait := max(res.RetryAfter, time.Millisecond)
		ls.refusedUntil = now.Add(wait)
		return Result{RetryAfter: wait, ResetAfter: max(res.ResetAfter, 0)}, nil
	}
	ls.tokens, ls.lapse, ls.remaining = res.Allowed-1, now.Add(leaseLife), res.Remaining
	return ls.granted(now), nil
}

// granted is the answer to a request spent from the lease: what Redis
// had left plus what the lease still holds.
func (ls *lease) granted(now time.Time) Result {
	return Result{Allowed: true, Remaining: ls.remaining + ls.tokens, ResetAfter: max(ls.whole.Sub(now), 0)}
}
