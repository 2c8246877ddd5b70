package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/projections"
)

// API-level error kinds, mapped to statuses in problems below.
var (
	ErrBadRequest            = errors.New("bad request")
	ErrBadJSON               = errors.New("malformed JSON")
	ErrUnauthorized          = errors.New("unauthorized")
	ErrForbidden             = errors.New("forbidden")
	ErrTooLarge              = errors.New("request body too large")
	ErrRequestTimeout        = errors.New("request body not sent in time")
	ErrUnsupportedMediaType  = errors.New("unsupported media type")
	ErrPreconditionFailed    = errors.New("precondition failed")
	ErrUnavailable           = errors.New("unavailable")
	ErrIdempotencyMismatch   = errors.New("idempotency key reused with another request")
	ErrIdempotencyInProgress = errors.New("a request with this idempotency key is in progress")
	ErrMethodNotAllowed      = errors.New("method not allowed")
	ErrRouteNotFound         = errors.New("no such route")
	ErrRateLimited           = errors.New("too many requests")
)

// problemKind is one row of the error table: an error kind, its HTTP
// status, and its RFC 9457 type and title.
type problemKind struct {
	err    error
	status int
	slug   string
	title  string
}

// problems is the one table that maps error kinds to HTTP answers. Order
// matters: the first kind errors.Is matches wins. Anything unmatched is a
// 500 whose details are logged, never sent.
var problems = []problemKind{
	{ErrPreconditionFailed, http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"},
	{ErrIdempotencyMismatch, http.StatusUnprocessableEntity, "idempotency-mismatch", "Idempotency key reused"},
	{ErrIdempotencyInProgress, http.StatusConflict, "idempotency-in-progress", "Request in progress"},
	// The server's extractor failed, or answered what the rules refuse
	// (before the kinds its error may wrap): nothing was changed, and the
	// request may be sent again.
	{commands.ErrExtractorFailed, http.StatusBadGateway, "extractor-failed", "Extractor failed"},
	{domain.ErrInvalid, http.StatusUnprocessableEntity, "invalid", "Invalid input"},
	{eventstore.ErrInvalid, http.StatusUnprocessableEntity, "invalid", "Invalid input"},
	{domain.ErrNotFound, http.StatusNotFound, "not-found", "Not found"},
	// Erased: gone for good, and never served again (RFC 9110's 410).
	{domain.ErrErased, http.StatusGone, "erased", "Gone"},
	// Erased, but the query tables or the cache may hold copies until
	// the projections apply it: erasing again finishes it. Retry-After: 1.
	{commands.ErrErasurePending, http.StatusServiceUnavailable, "erasure-pending", "Erasure pending"},
	{ErrRouteNotFound, http.StatusNotFound, "not-found", "Not found"},
	{eventstore.ErrNoStream, http.StatusNotFound, "not-found", "Not found"},
	{ledger.ErrNoEvent, http.StatusNotFound, "not-found", "Not found"},
	{ledger.ErrNoCheckpoint, http.StatusNotFound, "not-found", "Not found"},
	// The event or size is not in the log's tree or checkpoints yet: the
	// next checkpoint (ARQ_LOG_CHECKPOINT_EVERY) will hold it.
	{ledger.ErrNotInTree, http.StatusConflict, "not-in-tree", "Not in the log's tree yet"},
	{domain.ErrStale, http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"},
	{domain.ErrConflict, http.StatusConflict, "conflict", "Conflict"},
	// A command that lost its append to other writers for its whole retry
	// budget: the server's congestion, not the caller's conflict (before
	// eventstore.ErrConflict, which it is too). Retry-After: 1.
	{commands.ErrBusy, http.StatusServiceUnavailable, "busy", "Busy"},
	{eventstore.ErrConflict, http.StatusConflict, "conflict", "Conflict"},
	{eventstore.ErrStreamType, http.StatusConflict, "conflict", "Conflict"},
	{eventstore.ErrEventIDReused, http.StatusConflict, "conflict", "Conflict"},
	{projections.ErrUnknownProjection, http.StatusNotFound, "not-found", "Not found"},
	{projections.ErrRebuildRunning, http.StatusConflict, "conflict", "Conflict"},
	{ErrBadJSON, http.StatusBadRequest, "bad-json", "Malformed JSON"},
	{ErrBadRequest, http.StatusBadRequest, "bad-request", "Bad request"},
	{ErrUnauthorized, http.StatusUnauthorized, "unauthorized", "Unauthorized"},
	{ErrForbidden, http.StatusForbidden, "forbidden", "Forbidden"},
	{ErrMethodNotAllowed, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	// The body was not all sent within the server's read timeout
	// (ARQ_REQUEST_READ_TIMEOUT); the connection is closed after.
	{ErrRequestTimeout, http.StatusRequestTimeout, "request-timeout", "Request timeout"},
	// Over a rate limit (see RateLimits); the answer carries Retry-After
	// and the RateLimit headers.
	{ErrRateLimited, http.StatusTooManyRequests, "rate-limited", "Too many requests"},
	{ErrUnsupportedMediaType, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "Unavailable"},
	// The change may or may not be in the log: a retry with the same
	// Idempotency-Key finds out (see Idempotency), without one it may
	// apply it twice.
	{eventstore.ErrOutcomeUnknown, http.StatusServiceUnavailable, "outcome-unknown", "Outcome unknown"},
	// The database could not be reached (after ErrOutcomeUnknown, which
	// an append cut short by an outage is too): nothing is wrong with the
	// request, and it may be sent again. WriteError marks these errors
	// (eventstore.Unreachable). Retry-After: 1.
	{eventstore.ErrUnavailable, http.StatusServiceUnavailable, "database-unavailable", "Database unavailable"},
}

// problemBase prefixes every problem type.
const problemBase = "https://arq.dev/problems/"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []domain.FieldError `json:"errors,omitempty"`
}

// WriteError answers err as application/problem+json through the problems
// table. The request stops there.
func WriteError(c *gin.Context, err error) {
	// An adapter's error that says Postgres could not be reached is marked
	// here, the one place every error passes, so that no adapter has to.
	err = eventstore.Unreachable(err)
	if errors.Is(err, eventstore.ErrOutcomeUnknown) {
		c.Set(outcomeUnknownKey, true) // the Idempotency middleware keeps the claim
	}
	p := ProblemOf(err)
	p.Instance, p.RequestID = c.Request.URL.Path, RequestIDFrom(c)
	if _, known := lookup(err); !known {
		logger(c).Error("request failed", "err", err, "path", c.Request.URL.Path)
	}
	switch p.Status {
	case http.StatusUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="arq"`)
	case http.StatusServiceUnavailable:
		c.Header("Retry-After", "1")
	}
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
}

// ProblemOf is the problem the API answers err with, through the
// problems table (without the request's instance and id): a
// domain.ValidationError names its fields, an error of no kind in the
// table is an internal error that tells nothing of itself. The MCP face
// refuses a tool's arguments with it, as the REST request would.
func ProblemOf(err error) Problem {
	kind, ok := lookup(err)
	if !ok {
		return Problem{Type: problemBase + "internal", Title: "Internal error", Status: http.StatusInternalServerError, Detail: "internal error"}
	}
	p := Problem{Type: problemBase + kind.slug, Title: kind.title, Status: kind.status, Detail: err.Error()}
	var v *domain.ValidationError
	if errors.As(err, &v) {
		p.Errors, p.Detail = v.Fields, "some fields are invalid"
	}
	return p
}

func lookup(err error) (problemKind, bool) {
	for _, k := range problems {
		if errors.Is(err, k.err) {
			return k, true
		}
	}
	return problemKind{}, false
}

// loggerKey holds the request's logger in the gin context.
const loggerKey = "arq.logger"

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*slog.Logger)
	}
	return slog.New(slog.DiscardHandler)
}

func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
