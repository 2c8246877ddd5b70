package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// EntityReader reads one user, session, message or memory by id, encoded
// as a GET serves it: from the query tables, or a cache in front of them.
type EntityReader interface {
	Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error)
}

// getEntity answers a GET of the entity of kind named by the path's id:
// its body, its version as ETag, and whether a cache answered.
func (r *resources) getEntity(c *gin.Context, kind domain.Kind) {
	e, err := r.Queries.Encoded(c.Request.Context(), kind, tenant(c), c.Param("id"))
	if err != nil {
		WriteError(c, err)
		return
	}
	etag(c, e.Version)
	if e.Cache != "" {
		c.Header("X-Arq-Cache", e.Cache)
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", e.JSON)
}
