// Package embeddings fills in embeddings of texts from an embedding model
// behind an OpenAI-compatible API.
package embeddings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// OpenAI embeds texts with an OpenAI-compatible endpoint: POST
// {URL}/embeddings with the model and the texts as input, one embedding
// per text back.
type OpenAI struct {
	URL    string // base URL, e.g. https://api.openai.com/v1
	Model  string
	APIKey string
	Client *http.Client
}

// maxAnswerBytes bounds an answer: 100 texts of 4096 dimensions as JSON.
const maxAnswerBytes = 16 << 20

// Embed implements domain.Embedder.
func (o OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": o.Model, "input": texts})
	if err != nil {
		return nil, fmt.Errorf("encode embeddings request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.URL, "/")+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("embeddings request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("embeddings request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("read embeddings answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("embeddings endpoint answered %s: %.200s", resp.Status, raw)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode embeddings answer: %w", err)
	}
	if len(out.Data) != len(texts) {
		return nil, fmt.Errorf("embeddings endpoint gave %d embeddings for %d texts", len(out.Data), len(texts))
	}
	// The answer names each embedding's input by index; keep input order.
	embs := make([][]float32, len(texts))
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(texts) || embs[d.Index] != nil || len(d.Embedding) == 0 {
			return nil, fmt.Errorf("embeddings endpoint gave a missing, repeated or empty embedding (index %d)", d.Index)
		}
		embs[d.Index] = d.Embedding
	}
	return embs, nil
}
