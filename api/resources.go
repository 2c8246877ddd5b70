package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/live"
	"github.com/arq-memory/arq/projections/readmodel"
)

// Resources are what the user, session, message and memory endpoints are
// built from.
type Resources struct {
	// Queries read the query tables (through caches, when wired);
	// Commands append events.
	Queries  Queries
	Commands Commands
	// Erasures erase; nil: erasure answers 503.
	Erasures Erasures
	Waiter   Waiter
	// History reads items of context snapshots, and entities, as they
	// were.
	History HistoryReader
	// Store reads the log for event streams; Live delivers new events.
	Store EventLog
	Live  *live.Hub
	// ReadYourWrites bounds how long a command waits for the query tables
	// to include its change before it answers 202 instead.
	ReadYourWrites time.Duration
	// MinPositionWait bounds how long a read sent with X-Arq-Min-Position
	// waits for projections before it answers 503.
	MinPositionWait time.Duration
	// MaxContextTokens is the largest max_tokens a context read or
	// snapshot may ask for; more is 422. 0: domain.MaxWindowTokens.
	MaxContextTokens int
	// Rebuilds runs online rebuilds for the admin API; nil serves none.
	Rebuilds Rebuilder
	// Stopping, when closed, ends the event streams (SSE), which would
	// otherwise hold a graceful shutdown until their clients leave; a
	// client resumes on another instance with Last-Event-ID. nil: never.
	Stopping <-chan struct{}
	// StreamWriteTimeout bounds each write of an event stream: a client
	// that reads nothing for that long loses its stream, and its handler
	// ends. 0: DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// Consolidator merges a user's duplicate memories; nil: consolidation
	// answers 503.
	Consolidator Consolidator
}

// Headers of ARQ's consistency protocol.
const (
	headerPosition    = "X-Arq-Position"
	headerMinPosition = "X-Arq-Min-Position"
)

// resources serves the memory API.
type resources struct {
	Resources
	health Health
	// keys tells the event streams when their key is revoked.
	keys *keyWatcher
	// owners tell whom an entity belongs to.
	owners Owners
}

// ifMatch reads If-Match (RFC 9110) as the versions the caller expects:
// nil when absent or "*" (any), else the versions of its strong ETags,
// empty when it has only weak or foreign ones (If-Match compares strongly,
// so they never match: 412). A header that is no list of ETags is 400.
func ifMatch(c *gin.Context) ([]int, error) {
	raw := c.Request.Header.Values("If-Match")
	if len(raw) == 0 {
		return nil, nil
	}
	// Several field lines are one list, joined by commas (RFC 9110 §5.3).
	h := strings.Join(raw, ",")
	if strings.Trim(h, " \t") == "*" {
		return nil, nil
	}
	tags, ok := entityTags(h)
	if !ok {
		return nil, errorf(ErrBadRequest, `If-Match %q is not * or a list of ETags such as "3"`, h)
	}
	versions := []int{}
	for _, t := range tags {
		// Compared strongly, character by character: "03" is not "3".
		if v, err := strconv.Atoi(t.opaque); err == nil && v >= 1 && !t.weak && strconv.Itoa(v) == t.opaque {
			versions = append(versions, v)
		}
	}
	return versions, nil
}

// etag sets the entity's version as its ETag.
func etag(c *gin.Context, version int) {
	c.Header("ETag", `"`+strconv.Itoa(version)+`"`)
}

// appendedMessage is a message appended by a command that answered 202:
// its id and its place in the session.
type appendedMessage struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

// commandError maps a command's error, turning a stale If-Match into 412.
func commandError(c *gin.Context, err error) {
	if errors.Is(err, domain.ErrStale) {
		err = fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
	}
	WriteError(c, err)
}

// prefersAsync reports Prefer: respond-async.
func prefersAsync(c *gin.Context) bool {
	for _, v := range c.Request.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// settle is how a command answers: it sets X-Arq-Position, then waits
// (bounded) until every projection includes the change and calls read to
// answer with the resource as the query tables now hold it. With Prefer:
// respond-async, or when the wait runs out, it answers 202 with the id and
// position (and a message append's messages), and the client reads later
// with X-Arq-Min-Position.
//
// Once the command appended, nothing that fails after answers an error:
// the change is in the log, and an error would let a client (and the
// Idempotency middleware, which keeps no failed answer) send it again.
// Such a failure answers 202 as well, and is logged.
func (r *resources) settle(c *gin.Context, res commands.Result, status int, location string, read func(ctx context.Context) (any, int, error)) {
	appended := !res.Cursor.IsZero()
	if !appended && r.Store != nil {
		// A command that changed nothing decided from the log as it is:
		// its answer waits for, and names, the log's last event, so that
		// the read below is no older than what it decided from.
		last, err := r.Store.Last(c.Request.Context())
		if err != nil {
			WriteError(c, err)
			return
		}
		res.Cursor = last
	}
	if !res.Cursor.IsZero() {
		c.Header(headerPosition, res.Cursor.String())
	}
	if location != "" {
		c.Header("Location", location)
	}
	accepted := func() {
		if prefersAsync(c) {
			c.Header("Preference-Applied", "respond-async")
		}
		body := accepted{ID: res.ID, Version: res.Version, Position: res.Cursor.String()}
		if len(res.Messages) > 0 {
			// A message append: each message, as a retry after a crash
			// is answered (appliedAnswer).
			body.Messages = make([]appendedMessage, len(res.Messages))
			for i, m := range res.Messages {
				body.Messages[i] = appendedMessage{ID: m.ID, Seq: m.Seq}
			}
		}
		c.JSON(http.StatusAccepted, body)
	}
	if prefersAsync(c) {
		accepted()
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), r.ReadYourWrites)
	defer cancel()
	if err := r.Waiter.WaitAppended(ctx, res.Cursor); err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
			accepted()
		case appended:
			logger(c).Warn("command appended; answered 202 as its wait failed", "position", res.Cursor.String(), "err", err)
			accepted()
		default:
			WriteError(c, err)
		}
		return
	}
	if read == nil {
		c.Status(status)
		return
	}
	body, version, err := read(c.Request.Context())
	if err != nil {
		if appended {
			logger(c).Warn("command appended; answered 202 as reading it back failed", "position", res.Cursor.String(), "err", err)
			accepted()
			return
		}
		WriteError(c, err)
		return
	}
	etag(c, version)
	c.JSON(status, body)
}

// minPosition makes a read wait (bounded) until projections reached the
// position a client sent in X-Arq-Min-Position; false means it answered.
func (r *resources) minPosition(c *gin.Context) bool {
	h := c.GetHeader(headerMinPosition)
	if h == "" {
		return true
	}
	cur, err := eventstore.ParseCursor(h)
	if err != nil {
		WriteError(c, fmt.Errorf("%w: %s: %w", ErrBadRequest, headerMinPosition, err))
		return false
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), r.MinPositionWait)
	defer cancel()
	if err := r.Waiter.Wait(ctx, cur); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			WriteError(c, fmt.Errorf("%w: projections have not reached position %s yet", ErrUnavailable, h))
			return false
		}
		WriteError(c, err)
		return false
	}
	return true
}

// page reads ?cursor= and ?limit=.
func page(c *gin.Context) (readmodel.Page, error) {
	p := readmodel.Page{Cursor: c.Query("cursor")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return p, invalidField("limit", "must be a whole number from 1 to 100")
		}
		if n < 1 || n > 100 {
			return p, invalidField("limit", "must be from 1 to 100")
		}
		p.Limit = n
	}
	return p, nil
}

// list answers a page of items.
func list[T any](c *gin.Context, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	c.JSON(http.StatusOK, pageOf[T]{Items: items, NextCursor: next})
}

// invalidField is a 422 naming one field.
func invalidField(field, message string) error {
	v := &domain.ValidationError{}
	v.Add(field, "%s", message)
	return v
}

// seconds turns a JSON number of seconds into a duration, nil staying nil.
// maxTTLSeconds is the longest time to live a session or memory may ask
// for: 100 years. (Longer ones would overflow a time.Duration, which ends
// at about 292 years, and expire at once.)
const maxTTLSeconds = 100 * 365 * 24 * 60 * 60

// ttlProblem says what is wrong with a ttl_seconds, if anything: it must
// be positive (or, where zero means none, not negative) and at most
// maxTTLSeconds.
func ttlProblem(s *int64, zeroMeansNone bool) string {
	switch {
	case s == nil:
		return ""
	case *s < 0 || *s == 0 && !zeroMeansNone:
		if zeroMeansNone {
			return "must not be negative"
		}
		return "must be positive"
	case *s > maxTTLSeconds:
		return "must be at most " + strconv.Itoa(maxTTLSeconds) + " (100 years)"
	}
	return ""
}

func seconds(s *int64) time.Duration {
	if s == nil {
		return 0
	}
	return time.Duration(*s) * time.Second
}
