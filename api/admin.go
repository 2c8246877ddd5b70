package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/projections"
)

// Rebuilder runs online rebuilds of projections (see projections.Rebuilds).
type Rebuilder interface {
	Start(name string) (projections.RebuildJob, error)
	Job(name string) (projections.RebuildJob, error)
}

func (r *resources) adminRoutes(g *gin.RouterGroup) {
	g.POST("/admin/projections/:name/rebuild", r.startRebuild)
	g.GET("/admin/projections/:name/rebuild", r.rebuildStatus)
}

// startRebuild begins an online rebuild and answers 202 with the job,
// whose state GET on the same path follows.
func (r *resources) startRebuild(c *gin.Context) {
	if r.Rebuilds == nil {
		WriteError(c, errorf(ErrUnavailable, "this process runs no online rebuilds"))
		return
	}
	job, err := r.Rebuilds.Start(c.Param("name"))
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Header("Location", c.Request.URL.Path)
	c.JSON(http.StatusAccepted, job)
}

// rebuildStatus answers the last online rebuild of a projection started by
// this process.
func (r *resources) rebuildStatus(c *gin.Context) {
	if r.Rebuilds == nil {
		WriteError(c, errorf(ErrUnavailable, "this process runs no online rebuilds"))
		return
	}
	job, err := r.Rebuilds.Job(c.Param("name"))
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, job)
}
