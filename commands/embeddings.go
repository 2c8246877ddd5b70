package commands

import (
	"context"
	"log/slog"

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
}

// EmbeddingDim is the deployment's embedding dimension; 0 for any.
func (s *Service) EmbeddingDim() int { return s.embed.Dim }

// Embed asks the provider for embeddings of texts, checking their number
// and dimension (domain.EmbedChecked). It is called before an event is
// decided, so the event holds the answer and replays never ask again.
// Without a provider it returns nil, nil.
func (s *Service) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return domain.EmbedChecked(ctx, s.embed.Provider, texts, s.embed.Dim)
}

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
