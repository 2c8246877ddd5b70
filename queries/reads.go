package queries

import (
	"context"
	"github.com/arq-memory/arq/domain"

	"github.com/arq-memory/arq/projections/readmodel"
)

// Encoded reads one entity by id, encoded as a GET serves it, through the
// entity cache when one is wired.
func (s *Service) Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error) {
	return s.entities.Encoded(ctx, kind, tenant, id)
}

// GetUser reads a user of tenant.
func (s *Service) GetUser(ctx context.Context, tenant, id string) (readmodel.User, error) {
	return s.reader.GetUser(ctx, tenant, id)
}

// ListUsers lists a tenant's users, those with externalID when it is set.
func (s *Service) ListUsers(ctx context.Context, tenant, externalID string, p readmodel.Page) ([]readmodel.User, string, error) {
	return s.reader.ListUsers(ctx, tenant, externalID, p)
}

// GetSession reads a session.
func (s *Service) GetSession(ctx context.Context, id string) (readmodel.Session, error) {
	return s.reader.GetSession(ctx, id)
}

// SessionByTokenHash finds the session whose token hashes to hash.
func (s *Service) SessionByTokenHash(ctx context.Context, hash string) (readmodel.Session, error) {
	return s.reader.SessionByTokenHash(ctx, hash)
}

// ListSessions lists a user's sessions.
func (s *Service) ListSessions(ctx context.Context, userID string, p readmodel.Page) ([]readmodel.Session, string, error) {
	return s.reader.ListSessions(ctx, userID, p)
}

// GetMessage reads a message.
func (s *Service) GetMessage(ctx context.Context, id string) (readmodel.Message, error) {
	return s.reader.GetMessage(ctx, id)
}

// ListMessages lists a session's messages in order.
func (s *Service) ListMessages(ctx context.Context, sessionID string, p readmodel.Page) ([]readmodel.Message, string, error) {
	return s.reader.ListMessages(ctx, sessionID, p)
}

// DerivedFrom lists the memory events extractions decided from a
// message, with each memory as it is now.
func (s *Service) DerivedFrom(ctx context.Context, messageID string) ([]readmodel.Derived, error) {
	return s.reader.DerivedFrom(ctx, messageID)
}

// GetMemory reads a memory.
func (s *Service) GetMemory(ctx context.Context, id string) (readmodel.Memory, error) {
	return s.reader.GetMemory(ctx, id)
}

// ListMemories lists a user's memories that pass f.
func (s *Service) ListMemories(ctx context.Context, userID string, f readmodel.MemoryFilter, p readmodel.Page) ([]readmodel.Memory, string, error) {
	return s.reader.ListMemories(ctx, userID, f, p)
}

// SearchMemories ranks a user's memories that pass f against query and
// its embedding (see QueryEmbedding), best first.
func (s *Service) SearchMemories(ctx context.Context, userID, query string, embedding []float32, f readmodel.MemoryFilter, limit int) ([]readmodel.MemoryHit, error) {
	return s.reader.SearchMemories(ctx, userID, query, embedding, f, limit)
}

// GetSnapshot reads a context snapshot.
func (s *Service) GetSnapshot(ctx context.Context, id string) (readmodel.Snapshot, error) {
	return s.reader.GetSnapshot(ctx, id)
}

// SnapshotOfMessage reads the context snapshot taken behind a message.
func (s *Service) SnapshotOfMessage(ctx context.Context, messageID string) (readmodel.Snapshot, error) {
	return s.reader.SnapshotOfMessage(ctx, messageID)
}

// ListSnapshots lists a session's context snapshots.
func (s *Service) ListSnapshots(ctx context.Context, sessionID string, p readmodel.Page) ([]readmodel.Snapshot, string, error) {
	return s.reader.ListSnapshots(ctx, sessionID, p)
}

// Stats counts each resource of a tenant, and its events.
func (s *Service) Stats(ctx context.Context, tenant string) (readmodel.Stats, error) {
	return s.reader.Stats(ctx, tenant)
}
