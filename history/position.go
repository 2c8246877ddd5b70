package history

import (
	"context"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// MessageAt is a message as it was at a place in the log: folded from
// its events up to and including at, in the log's commit-safe order. It
// is nil when the message was not appended yet, or redacted, by then. A
// context snapshot puts back the messages that changed after its
// assistant message with it.
func (r *Reader) MessageAt(ctx context.Context, id string, at eventstore.Cursor) (*domain.Message, error) {
	m := &domain.Message{}
	n, err := r.foldTo(ctx, domain.KindMessage, id, at, folder{apply: m.Apply, seq: m.SetSeq})
	if err != nil || n == 0 || !m.Exists() {
		return nil, err
	}
	return m, nil
}

// MemoryAt is a memory as it was at a place in the log (see MessageAt):
// nil when it was not stored yet, or deleted or recorded expired, by
// then. Whether its expiry time had passed is the caller's to judge.
func (r *Reader) MemoryAt(ctx context.Context, id string, at eventstore.Cursor) (*domain.Memory, error) {
	m := &domain.Memory{}
	n, err := r.foldTo(ctx, domain.KindMemory, id, at, folder{apply: m.Apply})
	if err != nil || n == 0 || !m.Exists() {
		return nil, err
	}
	return m, nil
}

// foldTo applies an entity's events up to and including at to f and says
// how many there were. A stream's versions follow the log's order (its
// writers hold the stream's lock until they commit), so these are a
// prefix of the stream.
func (r *Reader) foldTo(ctx context.Context, kind domain.Kind, id string, at eventstore.Cursor, f folder) (int, error) {
	steps, err := r.steps(ctx, kind, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range steps {
		if at.Less(s.rec.Cursor()) {
			break
		}
		e, err := domain.DecodeEvent(s.rec.Type, s.rec.SchemaVersion, s.rec.Data)
		if err != nil {
			return 0, fmt.Errorf("%s %s: event %s: %w", kind, id, s.rec.EventID, err)
		}
		f.apply(e, s.version, s.rec.RecordedAt)
		if f.seq != nil && s.version == 1 {
			f.seq(s.rec.Version)
		}
		n++
	}
	return n, nil
}
