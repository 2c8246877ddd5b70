package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/keys"
)

const actorKey = "arq.actor"

// keyIDKey holds, in the gin context, the id of the API key a request was
// authenticated with (not set for the admin key or an open API).
const keyIDKey = "arq.key_id"

// Actor is who is calling: "admin", "key:<id>", or "anonymous" when the
// API runs open. It is recorded as the actor of every event the request
// appends.
func Actor(c *gin.Context) string {
	if a := c.GetString(actorKey); a != "" {
		return a
	}
	return "anonymous"
}

// publicPaths answer without a key.
var publicPaths = []string{"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/redoc.standalone.js"}

// readPosts are the routes that take POST only for their body, and read:
// they need the read scope, as GETs do, and ignore an Idempotency-Key.
var readPosts = []string{"/v1/users/:id/memories/search", "/v1/sessions/:id/context", "/v1/sessions/validate"}

// sessionTokenPrefix starts every session token (see domain.Start), and
// no API key.
const sessionTokenPrefix = "arqs_"

// Auth checks the Bearer credential of every request: the admin key, an
// API key, or a session's token. With no admin key configured the API
// runs open, which it logs loudly once. Reads (GET, and the POSTs of
// readPosts) need the read scope, other requests write, /v1/admin/ admin;
// the admin key has all. Each caller acts in one tenant, and may be
// narrowed to a user or a session: Scope answers what lies outside as not
// found.
//
// It holds limits too: each key's requests count against its tenant's
// limit (limits.Key unless the tenant sets its own), a session token's
// against limits.Key, and those with a missing or wrong credential
// against limits.Anonymous of their client address, whose excess is
// answered 429 before any lookup (see rateGuard). The admin key, the
// public paths and an open API have none.
func Auth(d Deps) gin.HandlerFunc {
	if d.AdminKey == "" {
		d.Log.Warn("ARQ_ADMIN_KEY is not set: the API is OPEN, every caller may read and write everything")
		return func(c *gin.Context) {
			if !credentialChecked(c) {
				c.Next()
			}
		}
	}
	guard := newRateGuard(d.RateLimits)
	return func(c *gin.Context) {
		if slices.Contains(publicPaths, c.Request.URL.Path) || c.Request.Method == http.MethodOptions {
			c.Next()
			return
		}
		secret, ok := bearer(c.GetHeader("Authorization"))
		if !ok {
			if guard.anonymous(c) {
				WriteError(c, errorf(ErrUnauthorized, "send Authorization: Bearer <API key or session token>"))
			}
			return
		}
		if subtle.ConstantTimeCompare([]byte(secret), []byte(d.AdminKey)) == 1 {
			c.Set(actorKey, "admin")
			if credentialChecked(c) {
				return
			}
			c.Next()
			return
		}
		if guard.knownWrong(secret) {
			if guard.anonymous(c) {
				WriteError(c, errorf(ErrUnauthorized, "unknown or revoked credential"))
			}
			return
		}
		if guard.stillHeld(c) {
			return
		}
		if strings.HasPrefix(secret, sessionTokenPrefix) {
			sessionAuth(c, d, guard, secret)
			return
		}
		k, err := d.Keys.Lookup(c.Request.Context(), secret)
		if errors.Is(err, keys.ErrUnknown) {
			guard.rememberWrong(secret)
			if guard.anonymous(c) {
				WriteError(c, errorf(ErrUnauthorized, "unknown or revoked key"))
			}
			return
		}
		if err != nil {
			WriteError(c, err)
			return
		}
		c.Set(actorKey, "key:"+k.ID)
		c.Set(keyIDKey, k.ID)
		c.Set(callerKey, caller{scope: domain.Scope{Tenant: k.Tenant, UserID: k.UserID}})
		if !counted(c) && !guard.key(c, "key:"+k.ID, tenantLimit(d.RateLimits.Key, k.Limits)) {
			return
		}
		if credentialChecked(c) {
			return
		}
		need := ScopeWrite
		switch {
		case strings.HasPrefix(c.Request.URL.Path, "/v1/admin/") || c.Request.URL.Path == "/v1/admin":
			need = ScopeAdmin
		case c.Request.Method == http.MethodGet,
			c.Request.Method == http.MethodPost && slices.Contains(readPosts, c.FullPath()):
			need = ScopeRead
		}
		if !slices.Contains(k.Scopes, need) && !slices.Contains(k.Scopes, ScopeAdmin) {
			WriteError(c, errorf(ErrForbidden, "this key lacks the %s scope", need))
			return
		}
		c.Next()
	}
}

// throughKey holds, in a request's context, the handler Through serves
// the request with once Auth has accepted it.
type throughKey struct{}

// Through makes the API serve r, whatever its path, with h once its
// credential is authenticated (or when the API is open) and counted
// against the caller's rate limit, as a request of its own: the access
// log, metrics, request id, CORS headers and body limit are the API's,
// with h's answer. A missing or wrong credential is answered as on any
// request (401, or 429 past its address's limit), and one over its limit
// 429, without h. The MCP face serves /mcp so, and marks the REST requests
// of its tool calls Counted.
func Through(r *http.Request, h http.Handler) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), throughKey{}, h))
}

// countedRequest marks, in a request's context, a request already counted
// against its caller's rate limit (see Counted).
type countedRequest struct{}

// Counted marks r, made in-process on behalf of a request that
// Through counted already (an MCP tool call over /mcp), as not to
// be counted again: one request of the caller, one count.
func Counted(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), countedRequest{}, true))
}

// counted tells a request of Counted.
func counted(c *gin.Context) bool {
	done, _ := c.Request.Context().Value(countedRequest{}).(bool)
	return done
}

// credentialChecked serves a request of Through, whose credential was
// accepted, with its handler; it tells whether it did.
func credentialChecked(c *gin.Context) bool {
	h, _ := c.Request.Context().Value(throughKey{}).(http.Handler)
	if h == nil {
		return false
	}
	// The router answers a path it does not route 404 unless a handler
	// writes: h's answer is 200 unless h says otherwise.
	c.Status(http.StatusOK)
	// The requests h makes of the API in turn (an MCP tool call's REST
	// request) derive from this one's context: they are not served by h.
	h.ServeHTTP(c.Writer, c.Request.WithContext(context.WithValue(c.Request.Context(), throughKey{}, nil)))
	c.Abort()
	return true
}

// sessionAuth authenticates a request by a session's token: the session
// must be open and not past its expiry. The caller is then narrowed to
// that session (see sessionRoutes), in its user's tenant.
func sessionAuth(c *gin.Context, d Deps, guard *rateGuard, token string) {
	ctx := c.Request.Context()
	s, err := d.Resources.Queries.SessionByTokenHash(ctx, domain.HashToken(token))
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		WriteError(c, err)
		return
	}
	if err != nil || s.Status != "open" || s.ExpiresAt != nil && !time.Now().Before(*s.ExpiresAt) {
		if err == nil {
			// A session closed or expired stays so. One not found may
			// be one started a moment ago, not in the query tables yet:
			// not remembered, it is looked up again (the anonymous limit
			// bounds how often).
			guard.rememberWrong(token)
		}
		if guard.anonymous(c) {
			WriteError(c, errorf(ErrUnauthorized, "the session token opens no open session"))
		}
		return
	}
	o, err := d.Owners.Of(ctx, domain.StreamSession, s.ID)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Set(actorKey, "session:"+s.ID)
	c.Set(callerKey, caller{scope: domain.Scope{Tenant: o.Tenant, UserID: o.UserID, SessionID: s.ID}, session: true})
	if !counted(c) && !guard.key(c, "session:"+s.ID, d.RateLimits.Key) {
		return
	}
	if credentialChecked(c) {
		return
	}
	c.Next()
}

// tenantLimit is the limit of a tenant's keys: the deployment's, with
// what the tenant sets of its own. A rate set without a burst bursts to
// twice the rate.
func tenantLimit(deployment RateLimit, own keys.Limits) RateLimit {
	l := deployment
	if own.Rate != nil {
		l.Rate, l.Burst = *own.Rate, 2**own.Rate
	}
	if own.Burst != nil {
		l.Burst = *own.Burst
	}
	return l
}

// bearer returns the key of an Authorization header of the Bearer scheme,
// whose name is case-insensitive (RFC 9110 §11.1), with one or more
// spaces before the key; ok is false for another scheme or no key.
func bearer(h string) (secret string, ok bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimLeft(rest, " ")
	return secret, secret != ""
}
