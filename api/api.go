// Package api serves ARQ over HTTP with Gin: commands that append events and
// reads from the projections' query tables.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/projections"
)

// Deps are what the HTTP API is built from; cmd/arq wires them.
type Deps struct {
	DB          *pgxpool.Pool
	Projections []string
	Log         *slog.Logger
}

// New returns the HTTP handler of the API.
func New(d Deps) http.Handler {
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", readyz(d))
	return r
}

// readyz answers 200 when Postgres answers and no projection has stopped on
// a failing event, 503 otherwise, with the reasons.
func readyz(d Deps) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		checks := gin.H{}
		ready := true
		if err := d.DB.Ping(ctx); err != nil {
			ready = false
			checks["postgres"] = "unreachable"
			d.Log.Warn("readiness: Postgres unreachable", "err", err)
		} else {
			checks["postgres"] = "ok"
			stopped, err := projections.Stopped(ctx, d.DB)
			switch {
			case err != nil:
				ready = false
				checks["projections"] = "unknown"
				d.Log.Warn("readiness: read projection status", "err", err)
			case len(stopped) > 0:
				ready = false
				checks["projections"] = gin.H{"stopped": stopped}
			default:
				checks["projections"] = "ok"
			}
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		c.JSON(status, gin.H{"ready": ready, "checks": checks})
	}
}
