package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
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

// Tenant is a tenant as the admin API lists it.
type Tenant = keys.Tenant

// KeyStore keeps tenants and their API keys (keys.Store in Postgres):
// Auth looks keys up, the admin routes make, list and revoke them.
type KeyStore interface {
	// Lookup finds the live key with this secret; none is
	// keys.ErrUnknown.
	Lookup(ctx context.Context, secret string) (Key, error)
	// Create makes a key; the secret is returned once. An unknown tenant
	// is domain.ErrNotFound.
	Create(ctx context.Context, k keys.NewKey) (Key, string, error)
	// List lists the live keys of a tenant ("" every tenant's).
	List(ctx context.Context, tenant string) ([]Key, error)
	// Revoke revokes a key of a tenant ("" any) at once; an unknown one
	// is domain.ErrNotFound.
	Revoke(ctx context.Context, tenant, id string) error
	// Live returns those of ids that are live keys (not revoked).
	Live(ctx context.Context, ids []string) ([]string, error)

	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	Tenants(ctx context.Context) ([]Tenant, error)
	GetTenant(ctx context.Context, id string) (Tenant, error)
	SetLimits(ctx context.Context, id string, l keys.Limits) (Tenant, error)
}

type createKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Tenant is the key's tenant: the admin key may name any (default:
	// "default"); a tenant's admin key makes keys of its own alone.
	Tenant string `json:"tenant"`
	// UserID narrows the key to one user of the tenant.
	UserID string `json:"user_id"`
}

// keyRoutes manages keys under /v1/admin (admin scope). The admin key
// manages every tenant's; a key with the admin scope manages its own
// tenant's alone, and another tenant's keys are unknown to it (404).
func keyRoutes(g *gin.RouterGroup, ks KeyStore, owners Owners) {
	g.POST("/admin/keys", func(c *gin.Context) {
		var req createKeyRequest
		if err := BindJSON(c, &req); err != nil {
			WriteError(c, err)
			return
		}
		who := callerOf(c)
		switch {
		case req.Tenant == "" && who.operator:
			req.Tenant = domain.DefaultTenant
		case req.Tenant == "":
			req.Tenant = who.scope.Tenant
		case !who.operator && req.Tenant != who.scope.Tenant:
			WriteError(c, fmt.Errorf("%w: tenant %s", domain.ErrNotFound, req.Tenant))
			return
		}
		if req.UserID != "" {
			o, err := owners.Of(c.Request.Context(), domain.StreamUser, req.UserID)
			if errors.Is(err, domain.ErrNotFound) || err == nil && o.Tenant != req.Tenant {
				WriteError(c, invalidField("user_id", "names no user of tenant "+req.Tenant))
				return
			}
			if err != nil {
				WriteError(c, err)
				return
			}
		}
		k, secret, err := ks.Create(c.Request.Context(), keys.NewKey{Name: req.Name, Scopes: req.Scopes, Tenant: req.Tenant, UserID: req.UserID})
		if errors.Is(err, domain.ErrNotFound) {
			err = invalidField("tenant", "names no tenant")
		}
		if err != nil {
			WriteError(c, err)
			return
		}
		shownOnce(c, secret)
		c.JSON(http.StatusCreated, keyWithSecret{Key: k, Secret: secret})
	})
	g.GET("/admin/keys", func(c *gin.Context) {
		keys, err := ks.List(c.Request.Context(), managedTenant(c))
		if err != nil {
			WriteError(c, err)
			return
		}
		if keys == nil {
			keys = []Key{}
		}
		c.JSON(http.StatusOK, itemsOf[Key]{Items: keys})
	})
	g.DELETE("/admin/keys/:id", func(c *gin.Context) {
		if err := ks.Revoke(c.Request.Context(), managedTenant(c), c.Param("id")); err != nil {
			WriteError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
}

// managedTenant is the tenant whose keys the caller manages: "" (every
// tenant) for the admin key, else its own.
func managedTenant(c *gin.Context) string {
	if who := callerOf(c); !who.operator {
		return who.scope.Tenant
	}
	return ""
}

type createTenantRequest struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	RateLimit *int   `json:"rate_limit"`
	RateBurst *int   `json:"rate_burst"`
}

type tenantLimitsRequest struct {
	RateLimit *int `json:"rate_limit"`
	RateBurst *int `json:"rate_burst"`
}

// tenantRoutes manage tenants, for the admin key alone (see
// operatorRoutes).
func tenantRoutes(g *gin.RouterGroup, ks KeyStore) {
	g.POST("/admin/tenants", func(c *gin.Context) {
		var req createTenantRequest
		if err := BindJSON(c, &req); err != nil {
			WriteError(c, err)
			return
		}
		t, err := ks.CreateTenant(c.Request.Context(), Tenant{ID: req.ID, Name: req.Name, Limits: keys.Limits{Rate: req.RateLimit, Burst: req.RateBurst}})
		if err != nil {
			WriteError(c, err)
			return
		}
		c.Header("Location", "/v1/admin/tenants/"+t.ID)
		c.JSON(http.StatusCreated, t)
	})
	g.GET("/admin/tenants", func(c *gin.Context) {
		ts, err := ks.Tenants(c.Request.Context())
		if err != nil {
			WriteError(c, err)
			return
		}
		if ts == nil {
			ts = []Tenant{}
		}
		c.JSON(http.StatusOK, itemsOf[Tenant]{Items: ts})
	})
	g.GET("/admin/tenants/:tenant", func(c *gin.Context) {
		t, err := ks.GetTenant(c.Request.Context(), c.Param("tenant"))
		if err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, t)
	})
	g.PATCH("/admin/tenants/:tenant", func(c *gin.Context) {
		var req tenantLimitsRequest
		if err := BindJSON(c, &req); err != nil {
			WriteError(c, err)
			return
		}
		t, err := ks.SetLimits(c.Request.Context(), c.Param("tenant"), keys.Limits{Rate: req.RateLimit, Burst: req.RateBurst})
		if err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, t)
	})
}
