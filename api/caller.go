package api

import (
	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// callerKey holds, in the gin context, the caller Auth found.
const callerKey = "arq.caller"

// caller is who sends a request, as Auth found it, and what it may reach.
type caller struct {
	// scope is the tenant the caller acts in, and the user or session
	// it is narrowed to, if any. Its Tenant is always set.
	scope domain.Scope
	// operator is the deployment's admin key (or an open API): it
	// manages tenants, keys and projections; its own data requests act
	// in the default tenant.
	operator bool
	// session is a session's token: it may take sessionRoutes alone.
	session bool
}

// callerOf is the request's caller; without one (an open API, or a public
// path) the operator in the default tenant.
func callerOf(c *gin.Context) caller {
	if v, ok := c.Get(callerKey); ok {
		return v.(caller)
	}
	return caller{scope: domain.Scope{Tenant: domain.DefaultTenant}, operator: true}
}

// tenant is the tenant the caller acts in.
func tenant(c *gin.Context) string { return callerOf(c).scope.Tenant }

// meta is the trace a command records: the request's id (and the
// caller's own, if it sent one), the caller, and what it may reach.
func meta(c *gin.Context) commands.Meta {
	return commands.Meta{RequestID: RequestIDFrom(c), ClientRequestID: ClientRequestIDFrom(c), Actor: Actor(c),
		Scope: callerOf(c).scope, IdempotencyKey: c.GetString(idempotencyKeyKey)}
}
