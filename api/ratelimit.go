package api

import (
	"context"
	"crypto/sha256"
	"math"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
)

// RateLimit is how many requests a caller may send: Rate a second over
// time, Burst at once. A Rate of 0 sets no limit.
type RateLimit struct {
	Rate  int
	Burst int
}

// RateResult is a limiter's answer to one request.
type RateResult struct {
	Allowed bool
	// Remaining is how many more requests would go through now.
	Remaining int
	// RetryAfter is how long until a request goes through again.
	RetryAfter time.Duration
	// ResetAfter is how long until the whole burst is available again.
	ResetAfter time.Duration
}

// RateLimiter counts a caller's requests against a limit, shared by every
// instance where it can be (ratelimit.Limiter, in Redis). It answers
// always: a limiter that cannot reach its store counts on its own.
type RateLimiter interface {
	Allow(ctx context.Context, caller string, limit RateLimit) RateResult
}

// RateLimits are the limits Auth holds.
type RateLimits struct {
	// Limiter counts; nil sets no limits.
	Limiter RateLimiter
	// Key limits each API key (by its id). The admin key has none.
	Key RateLimit
	// Anonymous limits each client address for the requests with a
	// missing or wrong key.
	Anonymous RateLimit
}

// Wrong secrets and refused addresses kept in memory: how many, and how
// long a wrong secret is remembered.
const (
	rememberedSecrets = 1 << 14
	rememberedHeld    = 1 << 14
	wrongSecretTTL    = 10 * time.Second
)

// rateGuard holds RateLimits for Auth. A flood of wrong keys must not
// cost a database lookup each: a wrong secret is remembered (its hash, for
// wrongSecretTTL) and answered 401 without one, and an address over its
// anonymous limit is refused for its Retry-After before any lookup, a
// right key or a wrong one.
type rateGuard struct {
	limits RateLimits

	// wrong maps the hashes of secrets found wrong to when that is
	// forgotten.
	wrong *lru.Cache[[sha256.Size]byte, time.Time]
	// held maps the addresses over their anonymous limit to when they
	// may send again.
	held *lru.Cache[string, time.Time]
}

func newRateGuard(limits RateLimits) *rateGuard {
	g := &rateGuard{limits: limits}
	// lru.New fails only on a size below 1.
	g.wrong, _ = lru.New[[sha256.Size]byte, time.Time](rememberedSecrets)
	g.held, _ = lru.New[string, time.Time](rememberedHeld)
	return g
}

// knownWrong tells whether secret was found wrong a short while ago.
func (g *rateGuard) knownWrong(secret string) bool {
	until, ok := g.wrong.Get(sha256.Sum256([]byte(secret)))
	return ok && time.Now().Before(until)
}

// rememberWrong remembers that secret is wrong, for wrongSecretTTL.
func (g *rateGuard) rememberWrong(secret string) {
	g.wrong.Add(sha256.Sum256([]byte(secret)), time.Now().Add(wrongSecretTTL))
}

// stillHeld answers 429 and returns true when the client's address went
// over its anonymous limit and may not send yet: no key is looked up for
// it until then.
func (g *rateGuard) stillHeld(c *gin.Context) bool {
	until, ok := g.held.Get(c.RemoteIP())
	wait := time.Until(until)
	if !ok || wait <= 0 {
		return false
	}
	g.refuse(c, g.limits.Anonymous, RateResult{RetryAfter: wait, ResetAfter: wait})
	return true
}

// anonymous counts a request with a missing or wrong key against its
// address's limit; over it, it answers 429 and returns false.
func (g *rateGuard) anonymous(c *gin.Context) bool {
	addr := c.RemoteIP()
	res, limited := g.allow(c, "addr:"+addr, g.limits.Anonymous)
	if limited && !res.Allowed {
		g.held.Add(addr, time.Now().Add(res.RetryAfter))
	}
	return res.Allowed
}

// key counts a request of a key or session token (its caller name, such
// as "key:<id>") against limit; over it, it answers 429 and returns
// false.
func (g *rateGuard) key(c *gin.Context, name string, limit RateLimit) bool {
	res, _ := g.allow(c, name, limit)
	return res.Allowed
}

// allow counts the request of caller against limit, setting the
// RateLimit headers, and answers 429 when it is over; limited is false
// when no limit applies.
func (g *rateGuard) allow(c *gin.Context, caller string, limit RateLimit) (res RateResult, limited bool) {
	if g.limits.Limiter == nil || limit.Rate <= 0 {
		return RateResult{Allowed: true}, false
	}
	res = g.limits.Limiter.Allow(c.Request.Context(), caller, limit)
	if !res.Allowed {
		g.refuse(c, limit, res)
		return res, true
	}
	rateHeaders(c, limit, res)
	return res, true
}

// refuse answers 429 with Retry-After and the RateLimit headers.
func (g *rateGuard) refuse(c *gin.Context, limit RateLimit, res RateResult) {
	res.Remaining = 0
	rateHeaders(c, limit, res)
	c.Header("Retry-After", strconv.Itoa(max(ceilSeconds(res.RetryAfter), 1)))
	WriteError(c, errorf(ErrRateLimited, "over the limit of %d requests a second (burst %d); retry after %s",
		limit.Rate, limit.Burst, res.RetryAfter.Round(time.Millisecond)))
}

// rateHeaders sets the RateLimit fields of the IETF draft
// (draft-ietf-httpapi-ratelimit-headers): the burst, what is left of it,
// and the seconds until it is whole again.
func rateHeaders(c *gin.Context, limit RateLimit, res RateResult) {
	c.Header("RateLimit-Limit", strconv.Itoa(limit.Burst))
	c.Header("RateLimit-Remaining", strconv.Itoa(max(res.Remaining, 0)))
	c.Header("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
}

// ceilSeconds rounds d up to whole seconds, at least 1 when d is positive.
func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}
