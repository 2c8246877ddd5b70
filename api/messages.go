package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

type messageIn struct {
	Role      string         `json:"role"`
	Content   string         `json:"content"`
	Name      string         `json:"name"`
	Metadata  map[string]any `json:"metadata"`
	Embedding embeddingIn    `json:"embedding"`
}

// appendMessagesRequest is one message, or {"messages": [...]} appended
// together.
type appendMessagesRequest struct {
	messageIn
	Messages []messageIn `json:"messages"`
}

type editMessageRequest struct {
	Content   *string        `json:"content"`
	Metadata  map[string]any `json:"metadata"`
	Embedding embeddingIn    `json:"embedding"`
}

func (r *resources) messageRoutes(g *gin.RouterGroup) {
	g.POST("/sessions/:id/messages", r.appendMessages)
	g.GET("/sessions/:id/messages", r.listMessages)
	g.GET("/messages/:id", r.getMessage)
	g.PATCH("/messages/:id", r.editMessage)
	g.DELETE("/messages/:id", r.deleteMessage)
}

func (r *resources) appendMessages(c *gin.Context) {
	var req appendMessagesRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	batch := req.Messages != nil
	in := req.Messages
	if !batch {
		in = []messageIn{req.messageIn}
	} else if req.Role != "" || req.Content != "" || req.Name != "" || req.Metadata != nil || req.Embedding.set() {
		WriteError(c, invalidField("messages", "send one message or {\"messages\": [...]}, not both"))
		return
	}
	v := &domain.ValidationError{}
	msgs := make([]domain.NewMessage, len(in))
	for i, m := range in {
		field := "embedding"
		if len(in) > 1 { // as the domain names the fields of a batch
			field = fmt.Sprintf("messages[%d].embedding", i)
		}
		msgs[i] = domain.NewMessage{Role: m.Role, Content: m.Content, Name: m.Name, Metadata: m.Metadata, Embedding: m.Embedding.check(v, field)}
	}
	if err := v.Err(); err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.AppendMessages(c.Request.Context(), meta(c), c.Param("id"), msgs)
	if err != nil {
		commandError(c, err)
		return
	}
	location := ""
	if len(res.Messages) == 1 {
		location = "/v1/messages/" + res.Messages[0].ID
		res.ID = res.Messages[0].ID
		res.Version = 1
	}
	r.settle(c, res, http.StatusCreated, location, func(ctx context.Context) (any, int, error) {
		out := make([]readmodel.Message, len(res.Messages))
		for i, m := range res.Messages {
			msg, err := r.Queries.GetMessage(ctx, m.ID)
			if err != nil {
				return nil, 0, err
			}
			out[i] = msg
		}
		if !batch {
			return out[0], out[0].Version, nil
		}
		return appendedBatch{Messages: out}, 1, nil
	})
}

func (r *resources) listMessages(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	p, err := page(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	if _, err := r.Queries.GetSession(c.Request.Context(), c.Param("id")); err != nil {
		WriteError(c, err)
		return
	}
	items, next, err := r.Queries.ListMessages(c.Request.Context(), c.Param("id"), p)
	if err != nil {
		WriteError(c, err)
		return
	}
	list(c, items, next)
}

func (r *resources) readMessage(id string) func(ctx context.Context) (any, int, error) {
	return func(ctx context.Context) (any, int, error) {
		m, err := r.Queries.GetMessage(ctx, id)
		return m, m.Version, err
	}
}

func (r *resources) getMessage(c *gin.Context) {
	if !r.minPosition(c) || r.timeTravel(c, domain.KindMessage) {
		return
	}
	r.getEntity(c, domain.KindMessage)
}

func (r *resources) editMessage(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	var req editMessageRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	v := &domain.ValidationError{}
	embedding := req.Embedding.check(v, "embedding")
	if err := v.Err(); err != nil {
		WriteError(c, err)
		return
	}
	id := c.Param("id")
	res, err := r.Commands.EditMessage(c.Request.Context(), meta(c), id, expected, domain.EditMessage{Content: req.Content, Metadata: req.Metadata, Embedding: embedding})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusOK, "", r.readMessage(id))
}

// deleteMessage redacts the message: gone from every read, list and search;
// its history stays in the log. With ?erase=true it erases it instead
// (see erase.go). With ?cascade=derived the memories an extraction stored
// from it go first: deleted with the redaction, in its transaction, or
// erased each before the message is (see commands/derived.go). If-Match
// is the message's: a stale one changes nothing, as without cascade.
func (r *resources) deleteMessage(c *gin.Context) {
	var cascade bool
	switch c.Query("cascade") {
	case "":
	case "derived":
		cascade = true
	default:
		WriteError(c, invalidField("cascade", "must be derived"))
		return
	}
	erase := r.eraser().EraseMessage
	if cascade {
		erase = r.eraser().EraseMessageWithDerived
	}
	if erasing, ok := r.eraseInstead(c, erase); erasing || !ok {
		return
	}
	redact := r.Commands.RedactMessage
	if cascade {
		redact = r.Commands.RedactMessageWithDerived
	}
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := redact(c.Request.Context(), meta(c), c.Param("id"), expected, c.Query("reason"))
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusNoContent, "", nil)
}
