package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func (r *resources) statsRoutes(g *gin.RouterGroup) {
	g.GET("/stats", r.stats)
}

// stats answers the counts of each resource and of events of the
// caller's tenant, and each projection's position and lag (the
// deployment's, which name no tenant's data).
func (r *resources) stats(c *gin.Context) {
	counts, err := r.Queries.Stats(c.Request.Context(), tenant(c))
	if err != nil {
		WriteError(c, err)
		return
	}
	st, err := r.health.Statuses(c.Request.Context())
	if err != nil {
		WriteError(c, err)
		return
	}
	type projection struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Position string `json:"position"`
		Lag      int64  `json:"lag"`
	}
	ps := make([]projection, len(st))
	for i, s := range st {
		ps[i] = projection{Name: s.Name, State: s.State, Position: s.Checkpoint.String(), Lag: s.Behind}
	}
	c.JSON(http.StatusOK, gin.H{"counts": counts, "projections": ps})
}
