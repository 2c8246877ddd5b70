package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

// Owners tell whom an entity belongs to (owners.Resolver, from the log).
type Owners interface {
	// Of is the owner of the entity of stream type kind with id; none is
	// domain.ErrNotFound.
	Of(ctx context.Context, kind, id string) (domain.Owner, error)
	// OfStream is the owner of a stream of the log; none is
	// domain.ErrNotFound.
	OfStream(ctx context.Context, streamID string) (domain.Owner, error)
}

// operatorRoutes are for the deployment's admin key alone: they span
// every tenant. (/metrics spans them too, but counts requests by route
// and status, and names no tenant's data: any key with read may scrape
// it, none narrowed.)
var operatorRoutes = []string{"/v1/admin/tenants", "/v1/admin/projections"}

// sessionRoutes are the routes a session's token may take, on its own
// session (or that session's messages): append and read its messages and
// context, and read the session itself.
var sessionRoutes = map[string][]string{
	"/v1/sessions/:id":                   {http.MethodGet},
	"/v1/sessions/:id/messages":          {http.MethodGet, http.MethodPost},
	"/v1/sessions/:id/context":           {http.MethodGet, http.MethodPost},
	"/v1/sessions/:id/stream":            {http.MethodGet},
	"/v1/messages/:id":                   {http.MethodGet},
	"/v1/messages/:id/context":           {http.MethodGet},
	"/v1/messages/:id/history":           {http.MethodGet},
	"/v1/sessions/:id/context/snapshots": {http.MethodGet},
}

// proofRoutes are free of a narrowed key's refusal of tenant-wide routes:
// the checkpoints and consistency proofs are hashes of the whole log, no
// one's data, and an event's proof checks its owner itself.
var proofRoutes = []string{"/v1/log/checkpoint", "/v1/log/checkpoints/:size", "/v1/log/consistency", "/v1/events/:id/proof"}

// entityRoutes name, by the first segment after /v1/, the kind of entity
// a route's :id is (a stream type; "streams" take a whole stream id).
var entityRoutes = map[string]string{
	"users": domain.StreamUser, "sessions": domain.StreamSession, "messages": domain.StreamMessage,
	"memories": domain.StreamMemory, "context-snapshots": domain.StreamSnapshot, "streams": "",
}

// Scope keeps every caller inside what it may reach, in one place for
// every route: a route on an entity (its id in the path) goes on only when
// the entity's owner is in the caller's scope, and answers 404 otherwise,
// as for an id that names nothing (another tenant's ids must not be told
// from unknown ones). Routes over a whole tenant (lists of users, the
// event feed and stream, stats, key management) are refused, 403, to a
// caller narrowed to a user or a session; a session's token takes
// sessionRoutes alone; operatorRoutes are the admin key's. What a route
// lists or streams is kept to the caller's tenant by its handler.
func Scope(owners Owners) gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		if route == "" || slices.Contains(publicPaths, route) {
			c.Next() // no route (404 or 405 follow), or public
			return
		}
		who := callerOf(c)
		for _, r := range operatorRoutes {
			if (route == r || strings.HasPrefix(route, r+"/")) && !who.operator {
				WriteError(c, errorf(ErrForbidden, "%s is for the deployment's admin key", r))
				return
			}
		}
		if who.session && !slices.Contains(sessionRoutes[route], c.Request.Method) {
			WriteError(c, errorf(ErrForbidden, "a session token may only append and read its own session's messages and context"))
			return
		}
		kind, param, ok := entityOf(route)
		if !ok {
			if who.scope.Narrowed() && !slices.Contains(proofRoutes, route) {
				WriteError(c, errorf(ErrForbidden, "this key is narrowed to user %s: %s %s spans the whole tenant", who.scope.UserID, c.Request.Method, route))
				return
			}
			c.Next()
			return
		}
		id := c.Param(param)
		var o domain.Owner
		var err error
		if kind == "" {
			o, err = owners.OfStream(c.Request.Context(), id)
		} else {
			o, err = owners.Of(c.Request.Context(), kind, id)
		}
		if err == nil && !who.scope.Reaches(o) {
			err = domain.ErrNotFound
		}
		if errors.Is(err, domain.ErrNotFound) {
			WriteError(c, fmt.Errorf("%w: %s %s", domain.ErrNotFound, nameOf(kind), id))
			return
		}
		if err != nil {
			WriteError(c, err)
			return
		}
		c.Next()
	}
}

// entityOf reads which kind of entity a route names, and the path
// parameter that holds its id; ok is false for a route on no one entity.
func entityOf(route string) (kind, param string, ok bool) {
	rest, found := strings.CutPrefix(route, "/v1/")
	if !found {
		return "", "", false
	}
	first, tail, _ := strings.Cut(rest, "/")
	kind, ok = entityRoutes[first]
	if !ok {
		return "", "", false
	}
	switch {
	case strings.HasPrefix(tail, ":id"):
		return kind, "id", true
	case strings.HasPrefix(tail, ":stream"):
		return kind, "stream", true
	}
	return "", "", false // /v1/users, /v1/sessions/validate
}

// nameOf is how a not-found answer names a kind of entity.
func nameOf(kind string) string {
	switch kind {
	case "":
		return "stream"
	case domain.StreamSnapshot:
		return "context snapshot"
	}
	return kind
}
