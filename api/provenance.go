package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/projections/readmodel"
)

// Provenance (issue 22): where a memory came from, and what came of a
// message. A memory's provenance is read from the log, as its history
// is: every event an extraction decided, with the messages it read as
// they were at the versions read. A message's derived memories are read
// from the provenance projection's table, as other reads of the query
// tables are (X-Arq-Min-Position applies).

func (r *resources) provenanceRoutes(g *gin.RouterGroup) {
	g.GET("/memories/:id/provenance", r.memoryProvenance)
	g.GET("/messages/:id/derived", r.derivedMemories)
}

// provenanceBody is a memory's provenance: the events an extraction
// decided, oldest first; none for a memory a client stored.
type provenanceBody struct {
	MemoryID    string               `json:"memory_id"`
	Derivations []history.Derivation `json:"derivations"`
}

// derivedBody is what extractions made of a message: one item per memory
// event that read it, oldest first.
type derivedBody struct {
	MessageID string              `json:"message_id"`
	Items     []readmodel.Derived `json:"items"`
}

func (r *resources) memoryProvenance(c *gin.Context) {
	id := c.Param("id")
	ds, err := r.History.Provenance(c.Request.Context(), id)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, provenanceBody{MemoryID: id, Derivations: ds})
}

func (r *resources) derivedMemories(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	id := c.Param("id")
	items, err := r.Queries.DerivedFrom(c.Request.Context(), id)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, derivedBody{MessageID: id, Items: items})
}
