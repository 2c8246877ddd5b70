// Package api serves ARQ over HTTP with Gin: commands that append events and
// reads from the projections' query tables, with RFC 9457 problems, API
// keys, idempotent retries and read-your-writes.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/metrics"
)

// Deps are what the HTTP API is built from; package app wires them.
type Deps struct {
	Log *slog.Logger
	// Health tells /readyz and /v1/stats where Postgres and the
	// projections stand.
	Health Health
	// Redis, when set, is reported on by /readyz; the API serves without
	// it.
	Redis Pinger
	// Keys keeps the tenants and their API keys; Idempotency the answers
	// kept for retries.
	Keys KeyStore
	// Owners tell whom an entity belongs to, so that each caller reaches
	// its own tenant's alone (see Scope).
	Owners      Owners
	Idempotency IdempotencyStore
	// AdminKey manages API keys; empty runs the API open.
	AdminKey     string
	CORSOrigins  []string
	MaxBodyBytes int64
	// RateLimits limit the requests of each key and of each address
	// sending a missing or wrong key.
	RateLimits RateLimits
	// Resources serve users, sessions, messages and memories.
	Resources Resources
	// Metrics counts the requests and serves GET /metrics; nil: a
	// registry of the requests and the Go runtime alone.
	Metrics *metrics.Metrics
	// Version names the build, for GET /healthz.
	Version string
	// Ledger serves the log's checkpoints and proofs; nil serves none.
	Ledger Ledger
	// LogCheck tells /readyz what the server's check of the log against
	// its signed checkpoint last found; nil: no check runs.
	LogCheck LogVerification
}

// LogVerification is what the server's background check of the log
// against its latest signed checkpoint last found.
type LogVerification interface {
	LogVerified() LogCheck
}

// LogCheck is one outcome of the server's check of the log.
type LogCheck struct {
	// Checked says a check has run; OK that the log held what the
	// checkpoint of Size events signed.
	Checked, OK bool
	Size        int64
	// Problem and EventID describe the first difference, when not OK.
	Problem, EventID string
}

// New returns the HTTP handler of the API. HEAD is answered wherever GET
// is, as RFC 9110 asks of every server: as a GET whose body the server
// leaves out.
func New(d Deps) http.Handler {
	return headAsGet{engine(d)}
}

// headAsGet routes a HEAD request as the GET of the same resource. The
// server leaves out the body of the answer to a HEAD request (it checks
// the request it received, not the one routed).
type headAsGet struct{ next http.Handler }

func (h headAsGet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		r = r.WithContext(context.WithValue(r.Context(), headKey{}, true))
		r.Method = http.MethodGet
	}
	h.next.ServeHTTP(w, r)
}

// headKey marks, in a request's context, a HEAD request routed as GET.
type headKey struct{}

// isHead tells whether the request is a HEAD routed as GET: a streaming
// answer then ends with its headers (its body would be dropped).
func isHead(c *gin.Context) bool {
	head, _ := c.Request.Context().Value(headKey{}).(bool)
	return head
}

// engine is the API's router, every route a GET, POST, PATCH or DELETE.
func engine(d Deps) *gin.Engine {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if d.Owners == nil {
		d.Owners = noOwners{}
	}
	r.Use(RequestID(d.Log), Observe(d.Metrics), Timing(), AccessLog(), Recover(), CORS(d.CORSOrigins), BodyLimit(d.MaxBodyBytes),
		Auth(d), Scope(d.Owners), StorableInput(), KnownQuery())
	r.NoRoute(func(c *gin.Context) {
		WriteError(c, errorf(ErrRouteNotFound, "%s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		WriteError(c, errorf(ErrMethodNotAllowed, "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})

	healthz := func(c *gin.Context) { c.JSON(http.StatusOK, health{Status: "ok", Version: d.Version}) }
	r.GET("/healthz", healthz)
	r.GET("/readyz", readyz(d))
	// The document is made from the types compiled in: it fails to build
	// only on a bug, which the api package's tests catch first.
	doc, err := document()
	if err != nil {
		panic(err)
	}
	r.GET("/openapi.json", serveOpenAPI(doc))
	docsRoutes(r)
	r.GET("/metrics", gin.WrapH(d.Metrics.Handler()))

	v1 := r.Group("/v1", Idempotency(d.Idempotency))
	res := &resources{Resources: d.Resources, health: d.Health, keys: newKeyWatcher(d.Keys, keyCheckEvery, d.Log), owners: d.Owners}
	res.userRoutes(v1)
	res.eraseRoutes(v1)
	res.sessionRoutes(v1)
	res.messageRoutes(v1)
	res.memoryRoutes(v1)
	res.contextRoutes(v1)
	res.streamRoutes(v1)
	res.historyRoutes(v1)
	res.provenanceRoutes(v1)
	res.logRoutes(v1)
	res.ledgerRoutes(v1, d.Ledger)
	res.statsRoutes(v1)
	res.adminRoutes(v1)
	keyRoutes(v1, d.Keys, d.Owners)
	tenantRoutes(v1, d.Keys)
	return r
}

// noOwners knows no entity's owner: an API built without Owners answers
// every entity 404 rather than reach across tenants.
type noOwners struct{}

func (noOwners) Of(_ context.Context, kind, id string) (domain.Owner, error) {
	return domain.Owner{}, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
}

func (noOwners) OfStream(_ context.Context, id string) (domain.Owner, error) {
	return domain.Owner{}, fmt.Errorf("%w: stream %s", domain.ErrNotFound, id)
}

// readyz answers 200 when Postgres answers and no projection has stopped on
// a failing event, 503 otherwise, with the reasons.
func readyz(d Deps) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		checks := gin.H{}
		ready := true
		if err := d.Health.Ping(ctx); err != nil {
			ready = false
			checks["postgres"] = "unreachable"
			d.Log.Warn("readiness: Postgres unreachable", "err", err)
		} else {
			checks["postgres"] = "ok"
			stopped, err := d.Health.Stopped(ctx)
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
		// Redis is a shortcut: without it every endpoint works from
		// Postgres, so it degrades readiness details, not readiness.
		if d.Redis != nil {
			if err := d.Redis.Health(ctx); err != nil {
				checks["redis"] = "unreachable: serving from Postgres without the cache"
			} else {
				checks["redis"] = "ok"
			}
		}
		// The log differing from its signed checkpoint is reported, not
		// made a reason to stop serving: reads go on, operators are told
		// (arq_log_verified 0, an error in the log).
		if d.LogCheck != nil {
			switch lc := d.LogCheck.LogVerified(); {
			case !lc.Checked:
				checks["log"] = "not checked yet"
			case lc.OK && lc.Size == 0:
				checks["log"] = "no signed checkpoint yet"
			case lc.OK:
				checks["log"] = gin.H{"verified": lc.Size}
			default:
				checks["log"] = gin.H{"differs_from_checkpoint": lc.Size, "event_id": lc.EventID, "problem": lc.Problem}
			}
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		c.JSON(status, readiness{Ready: ready, Checks: checks})
	}
}
