package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

type startSessionRequest struct {
	Title      string         `json:"title"`
	Metadata   map[string]any `json:"metadata"`
	TTLSeconds *int64         `json:"ttl_seconds"`
}

type extendSessionRequest struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

type validateRequest struct {
	Token string `json:"token"`
}

func (r *resources) sessionRoutes(g *gin.RouterGroup) {
	g.POST("/users/:id/sessions", r.startSession)
	g.GET("/users/:id/sessions", r.listSessions)
	g.GET("/sessions/:id", r.getSession)
	g.POST("/sessions/:id/extend", r.extendSession)
	g.POST("/sessions/:id/close", r.closeSession)
	g.POST("/sessions/validate", r.validateSession)
}

func (r *resources) readSession(id string) func(ctx context.Context) (any, int, error) {
	return func(ctx context.Context) (any, int, error) {
		s, err := r.Queries.GetSession(ctx, id)
		return s, s.Version, err
	}
}

func (r *resources) startSession(c *gin.Context) {
	var req startSessionRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	if p := ttlProblem(req.TTLSeconds, true); p != "" {
		WriteError(c, invalidField("ttl_seconds", p))
		return
	}
	res, err := r.Commands.StartSession(c.Request.Context(), meta(c), c.Param("id"), domain.StartSession{
		Title: req.Title, Metadata: req.Metadata, TTL: seconds(req.TTLSeconds),
	})
	if err != nil {
		commandError(c, err)
		return
	}
	// The token is in no read model: it goes into the answer here, or into
	// the 202 body when the client does not wait.
	c.Header("X-Arq-Session-Token", res.Token)
	shownOnce(c, res.Token)
	r.settle(c, res, http.StatusCreated, "/v1/sessions/"+res.ID, func(ctx context.Context) (any, int, error) {
		s, err := r.Queries.GetSession(ctx, res.ID)
		if err != nil {
			return nil, 0, err
		}
		return sessionWithToken{Session: s, Token: res.Token}, s.Version, nil
	})
}

func (r *resources) listSessions(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	p, err := page(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	if _, err := r.Queries.GetUser(c.Request.Context(), tenant(c), c.Param("id")); err != nil {
		WriteError(c, err)
		return
	}
	items, next, err := r.Queries.ListSessions(c.Request.Context(), c.Param("id"), p)
	if err != nil {
		WriteError(c, err)
		return
	}
	list(c, items, next)
}

func (r *resources) getSession(c *gin.Context) {
	if !r.minPosition(c) || r.timeTravel(c, domain.KindSession) {
		return
	}
	r.getEntity(c, domain.KindSession)
}

func (r *resources) extendSession(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	var req extendSessionRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	if req.TTLSeconds == nil {
		WriteError(c, invalidField("ttl_seconds", "is required"))
		return
	}
	if p := ttlProblem(req.TTLSeconds, false); p != "" {
		WriteError(c, invalidField("ttl_seconds", p))
		return
	}
	id := c.Param("id")
	res, err := r.Commands.ExtendSession(c.Request.Context(), meta(c), id, expected, seconds(req.TTLSeconds))
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusOK, "", r.readSession(id))
}

func (r *resources) closeSession(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	id := c.Param("id")
	res, err := r.Commands.CloseSession(c.Request.Context(), meta(c), id, expected)
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusOK, "", r.readSession(id))
}

// validateSession answers 200 with the session a token opens, and 401 when
// the token opens no open session. Like every read, it waits for
// X-Arq-Min-Position.
func (r *resources) validateSession(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	var req validateRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	if req.Token == "" {
		WriteError(c, invalidField("token", "is required"))
		return
	}
	s, err := r.Queries.SessionByTokenHash(c.Request.Context(), domain.HashToken(req.Token))
	if err == nil {
		// Another tenant's session is one the token does not open here.
		var o domain.Owner
		if o, err = r.owners.Of(c.Request.Context(), domain.StreamSession, s.ID); err == nil && !callerOf(c).scope.Reaches(o) {
			err = domain.ErrNotFound
		}
	}
	if err != nil || s.Status != "open" {
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			WriteError(c, err)
			return
		}
		WriteError(c, fmt.Errorf("%w: the token opens no open session", ErrUnauthorized))
		return
	}
	etag(c, s.Version)
	c.JSON(http.StatusOK, s)
}
