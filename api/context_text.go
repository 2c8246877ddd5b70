package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

// Formats of a context window's answer (?format=): the window as JSON, or
// as text ready to paste into a prompt.
const (
	formatJSON = "json"
	formatText = "text"
)

// windowFormat reads ?format=, json when absent.
func windowFormat(c *gin.Context) (string, error) {
	switch f := c.Query("format"); f {
	case "", formatJSON:
		return formatJSON, nil
	case formatText:
		return formatText, nil
	default:
		v := &domain.ValidationError{}
		v.Add("format", "must be json or text")
		return "", v
	}
}

// writeWindow answers a window encoded as JSON in the format asked for.
func writeWindow(c *gin.Context, format string, window []byte) {
	if format != formatText {
		c.Data(http.StatusOK, "application/json; charset=utf-8", window)
		return
	}
	text, err := ContextText(window)
	if err != nil {
		WriteError(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(text))
}

// ContextText renders a context window, as the API encodes it in JSON
// (readmodel.Window), as
// text to paste into a prompt: the summary of the conversation so far,
// the memories relevant now (most relevant first), then the conversation's
// newest messages in order. A part the window does not hold is left out.
// The MCP server's context tool gives the same text.
func ContextText(window []byte) (string, error) {
	var w textWindow
	if err := json.Unmarshal(window, &w); err != nil {
		return "", fmt.Errorf("decode context window: %w", err)
	}
	var b strings.Builder
	section := func(title string) {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("## " + title + "\n\n")
	}
	if w.Summary != nil && strings.TrimSpace(w.Summary.Content) != "" {
		section("Summary of the conversation so far")
		b.WriteString(continued(w.Summary.Content) + "\n")
	}
	if len(w.Memories) > 0 {
		section("What you remember about the user")
		for _, m := range w.Memories {
			fmt.Fprintf(&b, "- (%s) %s\n", m.Type, oneLineText(m.Content))
		}
	}
	if len(w.Messages) > 0 {
		section("Conversation")
		for _, m := range w.Messages {
			who := m.Role
			if m.Name != "" {
				who += " (" + m.Name + ")"
			}
			fmt.Fprintf(&b, "%s: %s\n", who, continued(m.Content))
		}
	}
	return b.String(), nil
}

// continued is text trimmed, each line after its first indented by four
// spaces: a message or summary of several lines stays inside its part of
// the text, and none of its lines can pass for a heading of another part
// (a line "## What you remember about the user" in a user's message).
func continued(text string) string {
	return strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n    ")
}

// textWindow is what ContextText reads of a window (readmodel.Window):
// the texts, not the times, metadata and costs it would decode for
// nothing.
type textWindow struct {
	Summary *struct {
		Content string `json:"content"`
	} `json:"summary"`
	Messages []struct {
		Role    string `json:"role"`
		Name    string `json:"name"`
		Content string `json:"content"`
	} `json:"messages"`
	Memories []struct {
		Type    string `json:"type"`
		Content string `json:"content"`
	} `json:"memories"`
}

// oneLineText keeps a memory on its list item's line.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
