package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
)

// Consolidator merges a user's duplicate memories, as events
// (commands.Consolidation).
type Consolidator interface {
	Consolidate(ctx context.Context, meta commands.Meta, userID string) (commands.Consolidated, error)
}

// consolidateMemories merges the user's duplicate memories. The answer is
// the command's own (nothing is read back), 200 whether or not anything
// was merged; like a command's, it waits (bounded) until the query tables
// hold the merges and carries X-Arq-Position, so that a read given it in
// X-Arq-Min-Position sees them whatever the wait.
func (r *resources) consolidateMemories(c *gin.Context) {
	if r.Consolidator == nil {
		WriteError(c, errorf(ErrUnavailable, "this server does not consolidate memories"))
		return
	}
	out, err := r.Consolidator.Consolidate(c.Request.Context(), meta(c), c.Param("id"))
	if err != nil {
		commandError(c, err)
		return
	}
	body := consolidation{RunID: out.RunID, Merged: make([]merged, len(out.Merges)), Examined: out.Examined, Model: out.Model}
	for i, m := range out.Merges {
		body.Merged[i] = merged{Kept: m.Kept, Superseded: m.Superseded, Reason: m.Reason, Action: m.Action}
	}
	pos := out.Result.Cursor
	if pos.IsZero() && r.Store != nil {
		// Nothing merged, decided from the log as it is: the answer names
		// the log's last event, as a command that changed nothing does.
		if pos, err = r.Store.Last(c.Request.Context()); err != nil {
			WriteError(c, err)
			return
		}
	}
	if !pos.IsZero() {
		c.Header(headerPosition, pos.String())
		ctx, cancel := context.WithTimeout(c.Request.Context(), r.ReadYourWrites)
		defer cancel()
		if err := r.Waiter.WaitAppended(ctx, pos); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			// The merges are in the log: the answer says what they are.
			logger(c).Warn("consolidation appended; answered before the query tables held it", "position", pos.String(), "err", err)
		}
	}
	c.JSON(http.StatusOK, body)
}
