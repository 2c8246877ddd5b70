package summarize

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/arq-memory/arq/domain"
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
	body, err := json.Marshal(map[string]any{
		"model":       c.Model,
		"temperature": 0,
		"messages":    []chatMessage{{Role: "system", Content: chatPrompt}, {Role: "user", Content: b.String()}},
	})
	if err != nil {
		return "", fmt.Errorf("encode chat request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("chat request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("chat request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read chat answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("chat endpoint answered %s: %.200s", resp.Status, raw)
	}
	var out struct {
		Choices []struct {
			Message chatMessage `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("decode chat answer: %w", err)
	}
	if len(out.Choices) == 0 || strings.TrimSpace(out.Choices[0].Message.Content) == "" {
		return "", fmt.Errorf("chat endpoint gave no summary")
	}
	return strings.TrimSpace(out.Choices[0].Message.Content), nil
}
