package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

// Ledger is the log's Merkle tree and its signed checkpoints (package
// ledger): what a client needs to check, without trusting the server,
// that an event is in the log and that the log only grew.
type Ledger interface {
	// Checkpoint is the signed checkpoint of size events, the latest
	// when size is 0; none is ledger.ErrNoCheckpoint.
	Checkpoint(ctx context.Context, size int64) (ledger.Signed, error)
	// Prove proves an event in the tree of size events.
	Prove(ctx context.Context, eventID string, size int64) (logproof.Inclusion, error)
	// Consistency proves the tree of to events extends that of from.
	Consistency(ctx context.Context, from, to int64) (logproof.Consistency, error)
	// EventStream is the stream an event belongs to; none is
	// ledger.ErrNoEvent.
	EventStream(ctx context.Context, eventID string) (string, error)
}

// ledgerRoutes are the routes of the log's proofs. The checkpoints and
// consistency proofs are hashes of the whole log, no tenant's data: any
// key may read them. An event's proof is its owner's, as the event is.
func (r *resources) ledgerRoutes(g *gin.RouterGroup, l Ledger) {
	if l == nil {
		l = noLedger{}
	}
	g.GET("/log/checkpoint", func(c *gin.Context) { r.checkpoint(c, l, 0) })
	g.GET("/log/checkpoints/:size", func(c *gin.Context) {
		size, err := strconv.ParseInt(c.Param("size"), 10, 64)
		if err != nil || size < 1 {
			WriteError(c, fmt.Errorf("%w: checkpoint %q", domain.ErrNotFound, c.Param("size")))
			return
		}
		r.checkpoint(c, l, size)
	})
	g.GET("/log/consistency", func(c *gin.Context) { r.consistency(c, l) })
	g.GET("/events/:id/proof", func(c *gin.Context) { r.proof(c, l) })
}

// checkpointJSON is a signed checkpoint as the API answers it.
type checkpointJSON struct {
	Origin string        `json:"origin"`
	Size   int64         `json:"size"`
	Root   logproof.Hash `json:"root"`
	Time   string        `json:"time"`
	// Note is the checkpoint as signed: what a client verifies.
	Note string `json:"note"`
}

func toCheckpointJSON(s ledger.Signed) checkpointJSON {
	return checkpointJSON{Origin: s.Origin, Size: s.Size, Root: s.Root, Time: s.Time.UTC().Format("2006-01-02T15:04:05Z"), Note: s.Note}
}

func (r *resources) checkpoint(c *gin.Context, l Ledger, size int64) {
	s, err := l.Checkpoint(c.Request.Context(), size)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, toCheckpointJSON(s))
}

// sizeQuery reads a tree size from the query parameter name: a positive
// whole number, or the latest checkpoint's size when it is absent.
func sizeQuery(c *gin.Context, l Ledger, name string) (int64, *ledger.Signed, bool) {
	if s := c.Query(name); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			v := &domain.ValidationError{}
			v.Add(name, "must be a whole number of events, 0 or more")
			WriteError(c, v)
			return 0, nil, false
		}
		return n, nil, true
	}
	cp, err := l.Checkpoint(c.Request.Context(), 0)
	if err != nil {
		WriteError(c, err)
		return 0, nil, false
	}
	return cp.Size, &cp, true
}

func (r *resources) consistency(c *gin.Context, l Ledger) {
	from, _, ok := sizeQuery(c, l, "from")
	if !ok {
		return
	}
	to, _, ok := sizeQuery(c, l, "to")
	if !ok {
		return
	}
	if from > to {
		v := &domain.ValidationError{}
		v.Add("from", "must not be after to")
		WriteError(c, v)
		return
	}
	p, err := l.Consistency(c.Request.Context(), from, to)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (r *resources) proof(c *gin.Context, l Ledger) {
	ctx, id := c.Request.Context(), c.Param("id")
	stream, err := l.EventStream(ctx, id)
	if err == nil {
		var o domain.Owner
		if o, err = r.owners.OfStream(ctx, stream); err == nil && !callerOf(c).scope.Reaches(o) {
			err = domain.ErrNotFound
		}
	}
	if err != nil {
		WriteError(c, fmt.Errorf("event %s: %w", id, err))
		return
	}
	size, cp, ok := sizeQuery(c, l, "size")
	if !ok {
		return
	}
	p, err := l.Prove(ctx, id, size)
	if err != nil {
		WriteError(c, err)
		return
	}
	out := inclusionProof{Inclusion: p}
	if cp != nil {
		j := toCheckpointJSON(*cp)
		out.Checkpoint = &j
	}
	c.JSON(http.StatusOK, out)
}

// noLedger answers for an API built without the log's tree: 503.
type noLedger struct{}

var errNoLedger = errorf(ErrUnavailable, "this server does not serve the log's proofs")

func (noLedger) Checkpoint(context.Context, int64) (ledger.Signed, error) {
	return ledger.Signed{}, errNoLedger
}

func (noLedger) Prove(context.Context, string, int64) (logproof.Inclusion, error) {
	return logproof.Inclusion{}, errNoLedger
}

func (noLedger) Consistency(context.Context, int64, int64) (logproof.Consistency, error) {
	return logproof.Consistency{}, errNoLedger
}

func (noLedger) EventStream(context.Context, string) (string, error) { return "", errNoLedger }
