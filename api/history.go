package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

func (r *resources) historyRoutes(g *gin.RouterGroup) {
	for path, kind := range map[string]domain.Kind{
		"/users/:id/history": domain.KindUser, "/sessions/:id/history": domain.KindSession,
		"/messages/:id/history": domain.KindMessage, "/memories/:id/history": domain.KindMemory,
	} {
		g.GET(path, r.entityHistory(kind))
	}
}

// entityHistory answers every event of an entity, oldest first, with
// when, who, which request and the fields it changed; from the log, so
// also for entities deleted since.
func (r *resources) entityHistory(kind domain.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		entries, err := r.History.History(c.Request.Context(), kind, c.Param("id"))
		if err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, historyBody{Items: entries})
	}
}

// timeTravel answers a GET of an entity sent with ?version=N or
// ?as_of=<RFC 3339 time> with the entity as it was then, folded from the
// log; it reports whether it answered.
func (r *resources) timeTravel(c *gin.Context, kind domain.Kind) bool {
	v, at := c.Query("version"), c.Query("as_of")
	if v == "" && at == "" {
		return false
	}
	if v != "" && at != "" {
		WriteError(c, invalidField("as_of", "give version or as_of, not both"))
		return true
	}
	version := 0
	var asOf *time.Time
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			WriteError(c, invalidField("version", "must be a whole number of at least 1"))
			return true
		}
		version = n
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			WriteError(c, invalidField("as_of", "must be an RFC 3339 time, e.g. 2026-11-24T09:30:00Z"))
			return true
		}
		asOf = &t
	}
	state, err := r.History.At(c.Request.Context(), kind, c.Param("id"), version, asOf)
	if err != nil {
		WriteError(c, err)
		return true
	}
	if n, ok := state["version"].(int); ok {
		etag(c, n)
	}
	c.JSON(http.StatusOK, state)
	return true
}
