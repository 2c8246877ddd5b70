package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// AppendMessages appends messages to a session, in order. The session's
// message log numbers them: its version is the sequence number, so
// concurrent appenders all succeed with gapless numbers (the store resolves
// their races). The session stream is guarded at the version the decision
// saw, so a close or expiry racing the append refuses it. Messages without
// an embedding from the client get one from the provider, if any, in one
// request; a failing provider leaves them without.
func (s *Service) AppendMessages(ctx context.Context, meta Meta, sessionID string, msgs []domain.NewMessage) (Result, error) {
	var missing []int
	var texts []string
	for i := range msgs {
		msgs[i].MessageID = domain.NewID()
		msgs[i].EmbeddingDim = s.embed.Dim
		if msgs[i].Embedding == nil && msgs[i].Content != "" {
			missing = append(missing, i)
			texts = append(texts, msgs[i].Content)
		}
	}
	if s.embed.Provider != nil && len(texts) > 0 {
		// The provider (a paid call, seconds at worst) is asked only for
		// messages that would be appended: decide once without them.
		sess, err := s.appendingSession(ctx, sessionID)
		if err != nil {
			return Result{}, err
		}
		if _, err := domain.AppendMessages(sess, msgs, s.tokens, s.now()); err != nil {
			return Result{}, err
		}
		s.fill(ctx, "message", texts, func(i int, e []float64) { msgs[missing[i]].Embedding = e })
	}
	return retry(ctx, func() (Result, error) {
		sess, err := s.appendingSession(ctx, sessionID)
		if err != nil {
			return Result{}, err
		}
		guard, tenant, err := s.owner(ctx, meta, sess.UserID(), "session", sessionID, true)
		if err != nil {
			return Result{}, err
		}
		events, err := domain.AppendMessages(sess, msgs, s.tokens, s.now())
		if err != nil {
			return Result{}, err
		}
		evs, err := toStore(meta, tenant, events)
		if err != nil {
			return Result{}, err
		}
		res, err := s.store.AppendMulti(ctx, guard,
			eventstore.StreamAppend{Stream: stream(domain.StreamSession, sessionID), Expected: eventstore.Exactly(sess.Version())},
			eventstore.StreamAppend{Stream: stream(domain.StreamMessageLog, sessionID), Expected: eventstore.Any(), Events: evs},
		)
		if errors.Is(err, eventstore.ErrConflict) {
			// The session or its user moved since they were remembered:
			// the retry folds them afresh.
			s.sessions.Remove(sessionID)
			s.users.Remove(sess.UserID())
		}
		if err != nil {
			return Result{}, err
		}
		log := res[2]
		out := Result{ID: sessionID, Version: log.Version, Cursor: log.Last().Cursor}
		for i, p := range log.Events {
			out.Messages = append(out.Messages, AppendedMessage{ID: msgs[i].MessageID.String(), Seq: p.Version})
		}
		return out, nil
	})
}

// appendingSession returns the session a message append decides with. A
// message append leaves the session's stream as it was, so the session
// folded for one append serves the next ones too, saving a read of its
// stream each: the append guards the session at the remembered version,
// and if anything was appended to the session since (extended, closed,
// expired, here or in another process), the guard fails with a conflict,
// the append forgets the session and the retry folds it afresh. A
// remembered session that refuses messages is folded afresh too, so a
// refusal is always the log's word.
func (s *Service) appendingSession(ctx context.Context, id string) (*domain.Session, error) {
	if sess, ok := s.sessions.Get(id); ok && sess.AcceptsMessages(s.now()) == nil {
		return sess, nil
	}
	sess, err := sessionEntity.load(ctx, s, id)
	if err != nil {
		return nil, err
	}
	s.sessions.Add(id, sess) // never changed after folding, so safe to share
	return sess, nil
}

// loadMessage folds a message: its appended event from the session's log,
// then the events of its own stream. Its version is 1 + its own stream's
// (see messageEntity).
func loadMessage(ctx context.Context, s *Service, id string) (*domain.Message, error) {
	if _, err := parseID("message", id); err != nil {
		return nil, err
	}
	sessionID, seq, err := s.messages.FindMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	appended, err := s.store.ReadStreamRange(ctx, domain.StreamID(domain.StreamMessageLog, sessionID), seq, seq)
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	if len(appended) != 1 {
		return nil, fmt.Errorf("%w: message %s", domain.ErrNotFound, id)
	}
	m := &domain.Message{}
	e, err := domain.DecodeEvent(appended[0].Type, appended[0].SchemaVersion, appended[0].Data)
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	m.Apply(e, 1, appended[0].RecordedAt)
	m.SetSeq(seq)
	own, err := s.store.ReadStream(ctx, domain.StreamID(domain.StreamMessage, id), 1)
	if err != nil {
		return nil, fmt.Errorf("load message %s: %w", id, err)
	}
	for _, r := range own {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			return nil, fmt.Errorf("load message %s: %w", id, err)
		}
		m.Apply(e, r.Version+1, r.RecordedAt)
	}
	if m.Erased() {
		return nil, fmt.Errorf("%w: message %s", domain.ErrErased, id)
	}
	if !m.Exists() {
		return nil, fmt.Errorf("%w: message %s", domain.ErrNotFound, id)
	}
	return m, nil
}

// EditMessage replaces a message's content or metadata. A new content
// without an embedding from the client gets one from the provider, if any.
func (s *Service) EditMessage(ctx context.Context, meta Meta, id string, expected []int, cmd domain.EditMessage) (Result, error) {
	cmd.EmbeddingDim = s.embed.Dim
	return execute(ctx, s, meta, messageEntity, id, expected, func(m *domain.Message) ([]domain.Event, error) {
		if cmd.Embedding == nil && cmd.Content != nil && *cmd.Content != m.Content() && *cmd.Content != "" {
			s.fill(ctx, "message", []string{*cmd.Content}, func(_ int, e []float64) { cmd.Embedding = e })
		}
		return m.Edit(cmd, s.tokens)
	})
}

// RedactMessage removes a message from every read; the log keeps its
// history.
func (s *Service) RedactMessage(ctx context.Context, meta Meta, id string, expected []int, reason string) (Result, error) {
	return execute(ctx, s, meta, messageEntity, id, expected, func(m *domain.Message) ([]domain.Event, error) {
		return m.Redact(reason)
	})
}
