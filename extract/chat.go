// Package extract proposes memories from a conversation with an
// OpenAI-compatible chat model: one call for candidate memories, one to
// decide each candidate against the user's memories that resemble it.
// Both answers are structured output (a strict JSON schema), read
// strictly: anything unexpected is an error, and an error changes nothing.
package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/arq-memory/arq/internal/openai"
)

// Chat extracts with an OpenAI-compatible chat completions endpoint
// (POST {URL}/chat/completions). It implements domain.Extractor.
type Chat struct {
	URL string // base URL, e.g. https://api.openai.com/v1
	// ModelName is the chat model (a field named Model would clash with
	// the method domain.Extractor asks for).
	ModelName string
	APIKey    string
	Client    *http.Client
}

// promptVersion names this package's prompts and schemas and is recorded
// with every run: bump it whenever a prompt or a schema changes, so that
// a memory can be traced to the words that asked for it.
const promptVersion = "extract-1"

// maxAnswerBytes bounds an answer: 32 candidates or decisions of a few
// sentences each fit many times over.
const maxAnswerBytes = 1 << 20

// Name is "chat".
func (c Chat) Name() string { return "chat" }

// Model is the chat model asked.
func (c Chat) Model() string { return c.ModelName }

// PromptVersion names the prompts and schemas sent.
func (c Chat) PromptVersion() string { return promptVersion }

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// complete asks the model, with the system prompt and the user message,
// for an answer in the JSON schema named step, and decodes the answer
// into out, refusing fields out does not have and text after the value.
func (c Chat) complete(ctx context.Context, step, schema, system, user string, out any) error {
	var resp struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
				Refusal string `json:"refusal"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	ep := openai.Endpoint{URL: c.URL, APIKey: c.APIKey, Client: c.Client}
	if err := ep.Post(ctx, "/chat/completions", "chat", map[string]any{
		"model":       c.ModelName,
		"temperature": 0,
		"messages":    []chatMessage{{Role: "system", Content: system}, {Role: "user", Content: user}},
		"response_format": map[string]any{
			"type":        "json_schema",
			"json_schema": map[string]any{"name": step, "strict": true, "schema": json.RawMessage(schema)},
		},
	}, maxAnswerBytes, &resp); err != nil {
		return err
	}
	if len(resp.Choices) == 0 {
		return errors.New("the chat endpoint gave no choices")
	}
	choice := resp.Choices[0]
	switch {
	case choice.Message.Refusal != "":
		return fmt.Errorf("the model refused: %.200s", choice.Message.Refusal)
	case choice.FinishReason == "length":
		return errors.New("the answer was cut at the model's token limit")
	case strings.TrimSpace(choice.Message.Content) == "":
		return errors.New("the answer is empty")
	}
	dec := json.NewDecoder(strings.NewReader(choice.Message.Content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("answer: text after the JSON value")
	}
	return nil
}

// missing is the error of a required field the answer left out (or null).
func missing(field string) error {
	return fmt.Errorf("answer: %s is missing", field)
}
