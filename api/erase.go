package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
)

// Erasure (issue 17): POST /v1/users/{id}/erase, and DELETE of a message
// or a memory with ?erase=true, erase for good what the user, message or
// memory held (see commands.Eraser): the answer comes once the data keys
// are gone, the erasure is in the log, the projections have applied it
// and the caches' copies are deleted. Erasing again is harmless and
// answers the same. An erasure is unconditional: If-Match is refused with
// it, and Prefer: respond-async is not honoured (the answer says the
// erasure is complete, so it waits for it).

func (r *resources) eraseRoutes(g *gin.RouterGroup) {
	g.POST("/users/:id/erase", r.eraseUser)
}

// erased is the answer to an erasure of a user.
type erased struct {
	ID     string `json:"id"`
	Erased bool   `json:"erased"`
}

func (r *resources) eraseUser(c *gin.Context) {
	res, ok := r.eraseEntity(c, r.eraser().EraseUser)
	if ok {
		c.JSON(http.StatusOK, erased{ID: res.ID, Erased: true})
	}
}

// eraseFunc is one of Erasures' methods.
type eraseFunc func(ctx context.Context, meta commands.Meta, id string) (commands.Result, error)

// eraseInstead erases the entity of a DELETE sent with ?erase=true and
// answers 204, as the DELETE does; erasing is false when the DELETE is to
// run as ever. ok is false when it answered an error.
func (r *resources) eraseInstead(c *gin.Context, erase eraseFunc) (erasing, ok bool) {
	switch c.Query("erase") {
	case "", "false":
		return false, true
	case "true":
	default:
		WriteError(c, invalidField("erase", "must be true or false"))
		return false, false
	}
	if len(c.Request.Header.Values("If-Match")) > 0 {
		WriteError(c, errorf(ErrBadRequest, "an erasure is unconditional: send it without If-Match"))
		return true, false
	}
	if _, ok := r.eraseEntity(c, erase); ok {
		c.Status(http.StatusNoContent)
	}
	return true, true
}

// eraseEntity runs an erasure of the entity in the path and sets
// X-Arq-Position; ok is false when it answered an error.
func (r *resources) eraseEntity(c *gin.Context, erase eraseFunc) (commands.Result, bool) {
	res, err := erase(c.Request.Context(), meta(c), c.Param("id"))
	if err != nil {
		WriteError(c, err)
		return res, false
	}
	if !res.Cursor.IsZero() {
		c.Header(headerPosition, res.Cursor.String())
	}
	return res, true
}

// eraser is the API's Erasures, or, when it has none, one that refuses
// every erasure as unavailable.
func (r *resources) eraser() Erasures {
	if r.Erasures == nil {
		return noErasures{}
	}
	return r.Erasures
}

type noErasures struct{}

func (noErasures) EraseUser(context.Context, commands.Meta, string) (commands.Result, error) {
	return commands.Result{}, errorf(ErrUnavailable, "this server does not erase")
}

func (noErasures) EraseMessage(context.Context, commands.Meta, string) (commands.Result, error) {
	return commands.Result{}, errorf(ErrUnavailable, "this server does not erase")
}

func (noErasures) EraseMemory(context.Context, commands.Meta, string) (commands.Result, error) {
	return commands.Result{}, errorf(ErrUnavailable, "this server does not erase")
}

func (noErasures) EraseMessageWithDerived(context.Context, commands.Meta, string) (commands.Result, error) {
	return commands.Result{}, errorf(ErrUnavailable, "this server does not erase")
}
