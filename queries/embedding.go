package queries

import (
	"context"

	"github.com/arq-memory/arq/domain"
)

// QueryEmbedding is the embedding a search or context window ranks with:
// the client's (values, nil when it sent none), validated against the
// deployment's dimension (a *domain.ValidationError naming "embedding"
// when wrong); else the provider's embedding of text (EmbedQuery); else
// none, and full text alone ranks.
func (s *Service) QueryEmbedding(ctx context.Context, values []float64, text string) ([]float32, error) {
	if values != nil {
		return domain.ParseEmbedding(values, s.dim)
	}
	return s.EmbedQuery(ctx, text), nil
}

// EmbedQuery is the provider's embedding of a query text, or nil when
// there is no provider or it fails: a query then ranks by full text alone,
// with a warning in the log. Answers are kept for the maxQueryEmbeddings
// texts used last, so that a context read repeated from the Redis cache
// does not wait for the provider each time.
func (s *Service) EmbedQuery(ctx context.Context, text string) []float32 {
	if s.embedder == nil || text == "" {
		return nil
	}
	if e, ok := s.embedded.Get(text); ok {
		return e
	}
	out, err := domain.EmbedChecked(ctx, s.embedder, []string{text}, s.dim)
	if err != nil {
		s.log.Warn("no embedding for the query; ranking by full text alone", "err", err)
		return nil
	}
	s.embedded.Add(text, out[0])
	return out[0]
}
