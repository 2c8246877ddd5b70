package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

type registerUserRequest struct {
	ExternalID string         `json:"external_id"`
	Name       string         `json:"name"`
	Email      string         `json:"email"`
	Metadata   map[string]any `json:"metadata"`
}

type updateUserRequest struct {
	Name     *string        `json:"name"`
	Email    *string        `json:"email"`
	Metadata map[string]any `json:"metadata"`
}

func (r *resources) userRoutes(g *gin.RouterGroup) {
	g.POST("/users", r.createUser)
	g.GET("/users", r.listUsers)
	g.GET("/users/:id", r.getUser)
	g.PATCH("/users/:id", r.updateUser)
	g.DELETE("/users/:id", r.deleteUser)
}

func (r *resources) readUser(c *gin.Context, id string) func(ctx context.Context) (any, int, error) {
	return func(ctx context.Context) (any, int, error) {
		u, err := r.Queries.GetUser(ctx, tenant(c), id)
		return u, u.Version, err
	}
}

func (r *resources) createUser(c *gin.Context) {
	var req registerUserRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.RegisterUser(c.Request.Context(), meta(c), domain.RegisterUser{
		ExternalID: req.ExternalID, Name: req.Name, Email: req.Email, Metadata: req.Metadata,
	})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusCreated, "/v1/users/"+res.ID, r.readUser(c, res.ID))
}

func (r *resources) listUsers(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	p, err := page(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	users, next, err := r.Queries.ListUsers(c.Request.Context(), tenant(c), c.Query("external_id"), p)
	if err != nil {
		WriteError(c, err)
		return
	}
	list(c, users, next)
}

func (r *resources) getUser(c *gin.Context) {
	if !r.minPosition(c) || r.timeTravel(c, domain.KindUser) {
		return
	}
	r.getEntity(c, domain.KindUser)
}

func (r *resources) updateUser(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	var req updateUserRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	id := c.Param("id")
	res, err := r.Commands.UpdateUser(c.Request.Context(), meta(c), id, expected, domain.UpdateProfile{
		Name: req.Name, Email: req.Email, Metadata: req.Metadata,
	})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusOK, "", r.readUser(c, id))
}

func (r *resources) deleteUser(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.DeleteUser(c.Request.Context(), meta(c), c.Param("id"), expected)
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusNoContent, "", nil)
}
