package domain

import (
	"context"
	"fmt"
	"math"
)

// MaxEmbeddingDim bounds the length of an embedding, so one request cannot
// bloat the log (the largest common models have 3072 or 4096).
const MaxEmbeddingDim = 4096

// ParseEmbedding reads a query's embedding, a vector that places a text in
// an embedding model's space (texts close in meaning have vectors close in
// direction), as float32: see checkEmbedding. dim is the deployment's
// dimension; 0 accepts any length.
func ParseEmbedding(values []float64, dim int) ([]float32, error) {
	v := &ValidationError{}
	e := checkEmbedding(v, "embedding", values, dim)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return e, nil
}

// checkEmbedding validates an embedding and returns it as float32, the
// precision it is stored in: 1 to MaxEmbeddingDim finite numbers within
// float32 range, not all zero (a zero vector has no direction), and
// exactly dim of them when the deployment names a dimension.
func checkEmbedding(v *ValidationError, field string, values []float64, dim int) []float32 {
	switch {
	case len(values) == 0:
		v.Add(field, "must hold at least one number")
		return nil
	case dim > 0 && len(values) != dim:
		v.Add(field, "must have %d dimensions, not %d", dim, len(values))
		return nil
	case len(values) > MaxEmbeddingDim:
		v.Add(field, "has %d dimensions, more than %d", len(values), MaxEmbeddingDim)
		return nil
	}
	out := make([]float32, len(values))
	zero := true
	for i, x := range values {
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxFloat32 {
			v.Add(field, "must hold finite numbers within float32 range")
			return nil
		}
		out[i] = float32(x)
		zero = zero && out[i] == 0
	}
	if zero {
		v.Add(field, "must not be all zeros")
		return nil
	}
	return out
}

// Embedder turns texts into embeddings, one per text in order: an
// embedding model behind an API. Commands ask it for the texts a client
// gave no embedding for, and record its answer in the event, so replays
// never ask again.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// EmbedChecked asks e for embeddings of texts and checks its answer: one
// embedding per text, each a valid embedding of dimension dim (0: any).
// Commands and queries both ask the provider through it, so both hold it
// to the same contract. With no provider or no texts it returns nil, nil.
func EmbedChecked(ctx context.Context, e Embedder, texts []string, dim int) ([][]float32, error) {
	if e == nil || len(texts) == 0 {
		return nil, nil
	}
	out, err := e.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("embedding provider: %w", err)
	}
	if len(out) != len(texts) {
		return nil, fmt.Errorf("embedding provider gave %d embeddings for %d texts", len(out), len(texts))
	}
	for _, v := range out {
		if _, err := ParseEmbedding(Float64s(v), dim); err != nil {
			return nil, fmt.Errorf("embedding provider: %w", err)
		}
	}
	return out, nil
}

// Float64s widens an embedding for a command's input.
func Float64s(e []float32) []float64 {
	if e == nil {
		return nil
	}
	out := make([]float64, len(e))
	for i, x := range e {
		out[i] = float64(x)
	}
	return out
}

// TextToEmbed is a live memory's or message's text that has no embedding,
// at the version it was read at: the embeddings backfill embeds it and sets
// the embedding at that version, so a text changed meanwhile is left to the
// embedding its change got.
type TextToEmbed struct {
	ID      string
	Version int
	Content string
}
