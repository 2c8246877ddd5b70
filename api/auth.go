package api

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

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
var publicPaths = []string{"/healthz", "/readyz", "/openapi.json"}

// readPosts are the routes that take POST only for their body, and read:
// they need the read scope, as GETs do, and ignore an Idempotency-Key.
var readPosts = []string{"/v1/users/:id/memories/search", "/v1/sessions/:id/context", "/v1/sessions/validate"}

// Auth checks the Bearer key of every request. With no admin key
// configured the API runs open, which it logs loudly once. Reads (GET, and
// the POSTs of readPosts) need the read scope, other requests write,
// /v1/admin/ admin; the admin key has all.
//
// It holds limits too: each key's requests count against limits.Key, and
// those with a missing or wrong key against limits.Anonymous of their
// client address, whose excess is answered 429 before any lookup (see
// rateGuard). The admin key, the public paths and an open API have none.
func Auth(adminKey string, store KeyStore, limits RateLimits, log *slog.Logger) gin.HandlerFunc {
	if adminKey == "" {
		log.Warn("ARQ_ADMIN_KEY is not set: the API is OPEN, every caller may read and write everything")
		return func(c *gin.Context) { c.Next() }
	}
	guard := newRateGuard(limits)
	return func(c *gin.Context) {
		if slices.Contains(publicPaths, c.Request.URL.Path) || c.Request.Method == http.MethodOptions {
			c.Next()
			return
		}
		secret, ok := bearer(c.GetHeader("Authorization"))
		if !ok {
			if guard.anonymous(c) {
				WriteError(c, errorf(ErrUnauthorized, "send Authorization: Bearer <API key>"))
			}
			return
		}
		need := ScopeWrite
		switch {
		case strings.HasPrefix(c.Request.URL.Path, "/v1/admin/") || c.Request.URL.Path == "/v1/admin":
			need = ScopeAdmin
		case c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead,
			c.Request.Method == http.MethodPost && slices.Contains(readPosts, c.FullPath()):
			need = ScopeRead
		}
		if subtle.ConstantTimeCompare([]byte(secret), []byte(adminKey)) == 1 {
			c.Set(actorKey, "admin")
			c.Next()
			return
		}
		if guard.knownWrong(secret) {
			if guard.anonymous(c) {
				WriteError(c, errorf(ErrUnauthorized, "unknown or revoked key"))
			}
			return
		}
		if guard.stillHeld(c) {
			return
		}
		k, err := store.Lookup(c.Request.Context(), secret)
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
		if !guard.key(c, k.ID) {
			return
		}
		if !slices.Contains(k.Scopes, need) && !slices.Contains(k.Scopes, ScopeAdmin) {
			WriteError(c, errorf(ErrForbidden, "this key lacks the %s scope", need))
			return
		}
		c.Next()
	}
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
