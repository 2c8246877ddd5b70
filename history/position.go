package history

import (
	"context"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// MessageAt is a message as it was at a place in the log: folded from
// its events up to and including at, in the log's commit-safe order. It
// is nil when the message was not appended yet, or redacted, by then, or
// when it was erased (then or since: its text is gone). A context
// snapshot puts back the messages that changed after its assistant
// message with it.
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
// then, or erased. Whether its expiry time had passed is the caller's to
// judge.
func (r *Reader) MemoryAt(ctx context.Context, id string, at eventstore.Cursor) (*domain.Memory, error) {
	m := &domain.Memory{}
	n, err := r.foldTo(ctx, domain.KindMemory, id, at, folder{apply: m.Apply})
	if err != nil || n == 0 || !m.Exists() {
		return nil, err
	}
	return m, nil
}

// MessagesAt is MessageAt of each of ids, read in two queries however
// many they are: the messages that existed at at, and are not erased, by
// id.
func (r *Reader) MessagesAt(ctx context.Context, ids []string, at eventstore.Cursor) (map[string]*domain.Message, error) {
	out := map[string]*domain.Message{}
	if len(ids) == 0 {
		return out, nil
	}
	appended, err := r.store.MessageAppendedEvents(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read messages as they were at %s: %w", at, err)
	}
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = domain.KindMessage.StreamID(id)
	}
	own, err := r.store.ReadStreamsUpTo(ctx, streams, at)
	if err != nil {
		return nil, fmt.Errorf("read messages as they were at %s: %w", at, err)
	}
	byStream := byStreamID(own)
	for _, a := range appended {
		if at.Less(a.Cursor()) {
			continue // appended after at
		}
		e, err := domain.DecodeEvent(a.Type, a.SchemaVersion, a.Data)
		if err != nil {
			return nil, fmt.Errorf("message appended by event %s: %w", a.EventID, err)
		}
		d, ok := e.Data.(domain.MessageAppendedData)
		if !ok {
			return nil, fmt.Errorf("event %s appends no message", a.EventID)
		}
		// Version 1 is the appended event; the message's own stream
		// follows from 2 (see steps).
		steps := []step{{rec: a, version: 1}}
		for _, rec := range byStream[domain.KindMessage.StreamID(d.MessageID)] {
			steps = append(steps, step{rec: rec, version: rec.Version + 1})
		}
		m := &domain.Message{}
		n, err := foldSteps(domain.KindMessage, d.MessageID, steps, at, folder{apply: m.Apply, seq: m.SetSeq})
		if err != nil {
			return nil, err
		}
		if n > 0 && m.Exists() {
			out[d.MessageID] = m
		}
	}
	return out, nil
}

// MemoriesAt is MemoryAt of each of ids, read in one query however many
// they are: the memories that existed at at, and are not erased, by id.
func (r *Reader) MemoriesAt(ctx context.Context, ids []string, at eventstore.Cursor) (map[string]*domain.Memory, error) {
	out := map[string]*domain.Memory{}
	if len(ids) == 0 {
		return out, nil
	}
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = domain.KindMemory.StreamID(id)
	}
	recs, err := r.store.ReadStreamsUpTo(ctx, streams, at)
	if err != nil {
		return nil, fmt.Errorf("read memories as they were at %s: %w", at, err)
	}
	byStream := byStreamID(recs)
	for _, id := range ids {
		var steps []step
		for _, rec := range byStream[domain.KindMemory.StreamID(id)] {
			steps = append(steps, step{rec: rec, version: rec.Version})
		}
		m := &domain.Memory{}
		n, err := foldSteps(domain.KindMemory, id, steps, at, folder{apply: m.Apply})
		if err != nil {
			return nil, err
		}
		if n > 0 && m.Exists() {
			out[id] = m
		}
	}
	return out, nil
}

// byStreamID groups events by their stream, each stream's in their order.
func byStreamID(recs []eventstore.Recorded) map[string][]eventstore.Recorded {
	out := map[string][]eventstore.Recorded{}
	for _, rec := range recs {
		out[rec.StreamID] = append(out[rec.StreamID], rec)
	}
	return out
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
	return foldSteps(kind, id, steps, at, f)
}

// foldSteps applies the steps up to and including at to f and says how
// many there were: none when the entity was erased (those steps read
// erased; an erasure after at, not among them, erased them too).
func foldSteps(kind domain.Kind, id string, steps []step, at eventstore.Cursor, f folder) (int, error) {
	if erased(steps) {
		return 0, nil
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
