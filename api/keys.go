package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/keys"
)

// Scopes a key may hold.
const (
	ScopeRead  = keys.ScopeRead
	ScopeWrite = keys.ScopeWrite
	ScopeAdmin = keys.ScopeAdmin
)

// Key is an API key as listed: never its secret or hash.
type Key = keys.Key

// KeyStore keeps API keys (keys.Store in Postgres): Auth looks them up,
// the admin routes make, list and revoke them.
type KeyStore interface {
	// Lookup finds the live key with this secret; none is
	// keys.ErrUnknown.
	Lookup(ctx context.Context, secret string) (Key, error)
	// Create makes a key with scopes; the secret is returned once.
	Create(ctx context.Context, name string, scopes []string) (Key, string, error)
	List(ctx context.Context) ([]Key, error)
	// Revoke revokes a key at once; an unknown one is domain.ErrNotFound.
	Revoke(ctx context.Context, id string) error
	// Live returns those of ids that are live keys (not revoked).
	Live(ctx context.Context, ids []string) ([]string, error)
}

type createKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// keyRoutes manages keys under /v1/admin (admin scope).
func keyRoutes(g *gin.RouterGroup, ks KeyStore) {
	g.POST("/admin/keys", func(c *gin.Context) {
		var req createKeyRequest
		if err := BindJSON(c, &req); err != nil {
			WriteError(c, err)
			return
		}
		k, secret, err := ks.Create(c.Request.Context(), req.Name, req.Scopes)
		if err != nil {
			WriteError(c, err)
			return
		}
		shownOnce(c, secret)
		c.JSON(http.StatusCreated, struct {
			Key
			Secret string `json:"key"`
		}{k, secret})
	})
	g.GET("/admin/keys", func(c *gin.Context) {
		keys, err := ks.List(c.Request.Context())
		if err != nil {
			WriteError(c, err)
			return
		}
		if keys == nil {
			keys = []Key{}
		}
		c.JSON(http.StatusOK, gin.H{"items": keys})
	})
	g.DELETE("/admin/keys/:id", func(c *gin.Context) {
		if err := ks.Revoke(c.Request.Context(), c.Param("id")); err != nil {
			WriteError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
}
