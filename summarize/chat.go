package summarize

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/openai"
)

// Chat summarizes with an OpenAI-compatible chat completions endpoint:
// POST {URL}/chat/completions with the model, a system prompt and the
// transcript.
type Chat struct {
	URL    string // base URL, e.g. https://api.openai.com/v1
	Model  string
	APIKey string
	Client *http.Client
}

// Name is "chat:" and the model.
func (c Chat) Name() string { return "chat:" + c.Model }

const chatPrompt = "Summarize this conversation for an assistant that will continue it. " +
	"Keep facts about the user, decisions, open questions and preferences. " +
	"If an earlier summary is given, fold it in. Answer with the summary only."

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Summarize implements domain.Summarizer.
func (c Chat) Summarize(ctx context.Context, previous string, lines []domain.TranscriptLine) (string, error) {
	var b strings.Builder
	if previous != "" {
		b.WriteString("Earlier summary:\n" + previous + "\n\nConversation since:\n")
	}
	for _, l := range lines {
		b.WriteString(l.Role + ": " + l.Content + "\n")
	}
	var out struct {
		Choices []struct {
			Message chatMessage `json:"message"`
		} `json:"choices"`
	}
	ep := openai.Endpoint{URL: c.URL, APIKey: c.APIKey, Client: c.Client}
	if err := ep.Post(ctx, "/chat/completions", "chat", map[string]any{
		"model":       c.Model,
		"temperature": 0,
		"messages":    []chatMessage{{Role: "system", Content: chatPrompt}, {Role: "user", Content: b.String()}},
	}, 1<<20, &out); err != nil {
		return "", err
	}
	if len(out.Choices) == 0 || strings.TrimSpace(out.Choices[0].Message.Content) == "" {
		return "", fmt.Errorf("chat endpoint gave no summary")
	}
	return strings.TrimSpace(out.Choices[0].Message.Content), nil
}
