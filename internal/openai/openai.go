// Package openai calls OpenAI-compatible HTTP endpoints (chat completions,
// embeddings): a JSON POST with an optional bearer key, a bounded answer,
// and errors that name the endpoint and quote the start of its answer.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Endpoint is one OpenAI-compatible API: its base URL (…/v1) and key.
type Endpoint struct {
	URL    string
	APIKey string
	// Client sends the requests; nil uses http.DefaultClient.
	Client *http.Client
}

// Post sends body as JSON to path under the base URL and decodes the
// answer, read up to maxAnswer bytes, into out. what names the endpoint in
// errors ("chat", "embeddings").
func (e Endpoint) Post(ctx context.Context, path, what string, body any, maxAnswer int64, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(e.URL, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%s request: %w", what, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
	}
	client := e.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s request: %w", what, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read %s answer: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s endpoint answered %s: %.200s", what, resp.Status, answer)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", what, err)
	}
	return nil
}
