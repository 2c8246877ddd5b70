// Package embeddings fills in embeddings of texts from an embedding model
// behind an OpenAI-compatible API.
package embeddings

import (
	"context"
	"fmt"
	"net/http"

	"github.com/arq-memory/arq/internal/openai"
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
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	ep := openai.Endpoint{URL: o.URL, APIKey: o.APIKey, Client: o.Client}
	if err := ep.Post(ctx, "/embeddings", "embeddings", map[string]any{"model": o.Model, "input": texts}, maxAnswerBytes, &out); err != nil {
		return nil, err
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
