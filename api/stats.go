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
	ps := make([]projectionStat, len(st))
	for i, s := range st {
		ps[i] = projectionStat{Name: s.Name, State: s.State, Position: s.Checkpoint.String(), Lag: s.Behind}
	}
	c.JSON(http.StatusOK, statsBody{Counts: counts, Projections: ps})
}
