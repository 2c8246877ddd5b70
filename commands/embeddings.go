package commands

import (
	"context"
	"fmt"
	"log/slog"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/arq-memory/arq/domain"
)

// Embeddings says how commands treat embeddings: the deployment's
// dimension (0 accepts any consistent length), and the provider that fills
// in the embeddings clients leave out (nil: none).
type Embeddings struct {
	Dim      int
	Provider domain.Embedder
	Log      *slog.Logger
}

// SetEmbeddings configures embeddings; without it any length is accepted
// and nothing is filled in.
func (s *Service) SetEmbeddings(e Embeddings) {
	if e.Log == nil {
		e.Log = slog.Default()
	}
	s.embed = e
	// lru.New fails only for a size below 1.
	s.queries, _ = lru.New[string, []float32](maxQueryEmbeddings)
}

// EmbeddingDim is the deployment's embedding dimension; 0 for any.
func (s *Service) EmbeddingDim() int { return s.embed.Dim }

// Embed asks the provider for embeddings of texts, checking their number
// and dimension. It is called before an event is decided, so the event
// holds the answer and replays never ask again. Without a provider it
// returns nil, nil.
func (s *Service) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if s.embed.Provider == nil || len(texts) == 0 {
		return nil, nil
	}
	out, err := s.embed.Provider.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("embedding provider: %w", err)
	}
	if len(out) != len(texts) {
		return nil, fmt.Errorf("embedding provider gave %d embeddings for %d texts", len(out), len(texts))
	}
	for _, e := range out {
		if _, err := domain.ParseEmbedding(domain.Float64s(e), s.embed.Dim); err != nil {
			return nil, fmt.Errorf("embedding provider: %w", err)
		}
	}
	return out, nil
}

// EmbedQuery is the provider's embedding of a query text, or nil when
// there is no provider or it fails: a query then ranks by full text alone,
// with a warning in the log. Answers are kept for the
// maxQueryEmbeddings texts used last, so that a context read repeated from
// the Redis cache does not wait for the provider each time.
func (s *Service) EmbedQuery(ctx context.Context, text string) []float32 {
	if s.embed.Provider == nil || text == "" {
		return nil
	}
	if e, ok := s.queries.Get(text); ok {
		return e
	}
	out, err := s.Embed(ctx, []string{text})
	if err != nil {
		s.embed.Log.Warn("no embedding for the query; ranking by full text alone", "err", err)
		return nil
	}
	s.queries.Add(text, out[0])
	return out[0]
}

// maxQueryEmbeddings bounds the query embeddings kept in memory (about
// 6 MB at 1536 dimensions); the least recently used go first.
const maxQueryEmbeddings = 1000

// fill asks the provider for embeddings of the texts at the given indexes
// and sets them with set. A failing provider blocks nothing: the items go
// without an embedding, with a warning in the log.
func (s *Service) fill(ctx context.Context, what string, texts []string, set func(i int, e []float64)) {
	out, err := s.Embed(ctx, texts)
	if err != nil {
		s.embed.Log.Warn("no embedding from the provider; storing without one", "what", what, "count", len(texts), "err", err)
		return
	}
	for i, e := range out {
		set(i, domain.Float64s(e))
	}
}
