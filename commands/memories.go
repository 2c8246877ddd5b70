package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// StoreMemory stores a memory of a user.
// Without an embedding from the client, the provider (if any) gives one.
func (s *Service) StoreMemory(ctx context.Context, meta Meta, userID string, cmd domain.StoreMemory) (Result, error) {
	cmd.MemoryID = domain.NewID()
	cmd.EmbeddingDim = s.embed.Dim
	if err := s.checkSource(ctx, userID, &cmd); err != nil {
		return Result{}, err
	}
	if s.embed.Provider != nil && cmd.Embedding == nil && cmd.Content != "" {
		// The provider is asked only for a memory that would be stored.
		u, err := userEntity.load(ctx, s, userID)
		if err != nil {
			return Result{}, err
		}
		if err := meta.reach(u, "user", userID); err != nil {
			return Result{}, err
		}
		if _, err := domain.StoreNew(u, cmd, s.tokens, s.now()); err != nil {
			return Result{}, err
		}
		s.fill(ctx, "memory", []string{cmd.Content}, func(_ int, e []float64) { cmd.Embedding = e })
	}
	return retry(ctx, func() (Result, error) {
		u, err := userEntity.load(ctx, s, userID)
		if err != nil {
			return Result{}, err
		}
		if err := meta.reach(u, "user", userID); err != nil {
			return Result{}, err
		}
		events, err := domain.StoreNew(u, cmd, s.tokens, s.now())
		if err != nil {
			return Result{}, err
		}
		evs, err := toStore(meta, u.Tenant(), events)
		if err != nil {
			return Result{}, err
		}
		res, err := s.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream(domain.StreamUser, userID), Expected: eventstore.Exactly(u.Version())},
			eventstore.StreamAppend{Stream: stream(domain.StreamMemory, cmd.MemoryID.String()), Expected: eventstore.NoStream(), Events: evs},
		)
		if err != nil {
			return Result{}, err
		}
		return Result{ID: cmd.MemoryID.String(), Version: res[1].Version, Cursor: res[1].Last().Cursor}, nil
	})
}

// checkSource refuses a memory's source session or message that is not the
// user's (or does not exist), and writes their ids in canonical form. It
// reads the log, not the query tables, so a message appended a moment ago
// with Prefer: respond-async is found. A malformed id is left to the
// domain, which names it.
func (s *Service) checkSource(ctx context.Context, userID string, cmd *domain.StoreMemory) error {
	v := &domain.ValidationError{}
	if id, err := domain.ParseID(cmd.SourceSessionID); cmd.SourceSessionID != "" && err == nil {
		cmd.SourceSessionID = id.String()
		sess, err := sessionEntity.load(ctx, s, cmd.SourceSessionID)
		switch {
		case errors.Is(err, domain.ErrNotFound) || err == nil && sess.UserID() != userID:
			v.Add("source_session_id", "names no session of this user")
		case err != nil:
			return err
		}
	}
	if id, err := domain.ParseID(cmd.SourceMessageID); cmd.SourceMessageID != "" && err == nil {
		cmd.SourceMessageID = id.String()
		appended, err := s.store.MessageAppendedEvent(ctx, cmd.SourceMessageID)
		if err != nil {
			return fmt.Errorf("find source message %s: %w", cmd.SourceMessageID, err)
		}
		var d struct {
			SessionID string `json:"session_id"`
			UserID    string `json:"user_id"`
		}
		switch {
		case len(appended) != 1 || json.Unmarshal(appended[0].Data, &d) != nil || d.UserID != userID:
			v.Add("source_message_id", "names no message of this user")
		case cmd.SourceSessionID != "" && d.SessionID != cmd.SourceSessionID:
			v.Add("source_message_id", "is not a message of source_session_id")
		}
	}
	return v.Err()
}

// UpdateMemory changes a live memory. A new content without an embedding
// from the client gets one from the provider, if any.
func (s *Service) UpdateMemory(ctx context.Context, meta Meta, id string, expected []int, cmd domain.UpdateMemory) (Result, error) {
	cmd.EmbeddingDim = s.embed.Dim
	return execute(ctx, s, meta, memoryEntity, id, expected, func(m *domain.Memory) ([]domain.Event, error) {
		if s.embed.Provider != nil && cmd.Embedding == nil && cmd.Content != nil && *cmd.Content != m.Content() && *cmd.Content != "" {
			// The provider is asked only for a change that would be made.
			if _, err := m.Update(cmd, s.tokens, s.now()); err != nil {
				return nil, err
			}
			s.fill(ctx, "memory", []string{*cmd.Content}, func(_ int, e []float64) { cmd.Embedding = e })
		}
		return m.Update(cmd, s.tokens, s.now())
	})
}

// DeleteMemory deletes a live memory.
func (s *Service) DeleteMemory(ctx context.Context, meta Meta, id string, expected []int) (Result, error) {
	return execute(ctx, s, meta, memoryEntity, id, expected, func(m *domain.Memory) ([]domain.Event, error) {
		return m.Delete(s.now())
	})
}

// ExpireMemory records that a memory's time ran out (expiry worker).
func (s *Service) ExpireMemory(ctx context.Context, meta Meta, id string) (Result, error) {
	return execute(ctx, s, meta, memoryEntity, id, nil, func(m *domain.Memory) ([]domain.Event, error) {
		return m.Expire(s.now())
	})
}
