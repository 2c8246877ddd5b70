// Package queries is the read side of ARQ, beside commands: what the API
// reads, answered from the query tables the projections keep (through
// readmodel, their Postgres adapter) and from caches in front of them.
// A context window's query embedding is asked for here, not in the
// command service: a read never goes through the write side.
package queries

import (
	"context"
	"log/slog"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// EntityReader reads one user, session, message or memory by id, encoded
// as a GET serves it: the readmodel.Reader itself, or a cache in front of
// it (cache.Entities).
type EntityReader interface {
	Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error)
}

// Config is what a Service reads with.
type Config struct {
	// Reader reads the query tables.
	Reader *readmodel.Reader
	// Tokens counts tokens as messages were counted, for context windows.
	Tokens domain.TokenCounter
	// Entities reads entities by id; nil: Reader.
	Entities EntityReader
	// Windows builds context windows; nil: Postgres's, uncached (see
	// NewWindows). A cache wraps the uncached one (cache.Windows).
	Windows WindowReader
	// Embedder is the provider of query embeddings; nil: none, and
	// queries rank by full text alone. EmbeddingDim is the deployment's
	// dimension (0: any), which a client's query embedding must have.
	Embedder     domain.Embedder
	EmbeddingDim int
	// Log hears of a provider failing; nil: slog.Default().
	Log *slog.Logger
}

// Service answers the API's reads.
type Service struct {
	reader   *readmodel.Reader
	entities EntityReader
	windows  WindowReader
	tokens   domain.TokenCounter
	embedder domain.Embedder
	dim      int
	log      *slog.Logger
	// embedded keeps the provider's answers for the query texts used
	// last (see EmbedQuery).
	embedded *lru.Cache[string, []float32]
}

// maxQueryEmbeddings bounds the query embeddings kept in memory (about
// 6 MB at 1536 dimensions); the least recently used go first.
const maxQueryEmbeddings = 1000

// New returns a Service reading as c says.
func New(c Config) *Service {
	s := &Service{reader: c.Reader, entities: c.Entities, windows: c.Windows, tokens: c.Tokens,
		embedder: c.Embedder, dim: c.EmbeddingDim, log: c.Log}
	if s.entities == nil {
		s.entities = c.Reader
	}
	if s.windows == nil {
		s.windows = NewWindows(c.Reader, c.Tokens)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	// lru.New fails only for a size below 1.
	s.embedded, _ = lru.New[string, []float32](maxQueryEmbeddings)
	return s
}
