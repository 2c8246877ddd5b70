package eventstore

import "context"

// UserEvents returns the events of the given types whose data names
// userID (data's user_id) and, when sessionID is set, that session (data's
// session_id), by stream and version, as the log holds them: sealed, for
// what they keep in the clear (ids, sequence numbers, a snapshot's
// items). Unlike ReadAll it reads every committed event, also one above
// the commit-safe horizon. migrations/00013 indexes the lookup.
func (s *Store) UserEvents(ctx context.Context, userID, sessionID string, eventTypes []string) ([]Recorded, error) {
	return s.queryRaw(ctx, `SELECT `+Columns+` FROM events
		WHERE data ? 'user_id' AND data->>'user_id' = $1
		  AND ($2 = '' OR data->>'session_id' = $2)
		  AND event_type = ANY ($3::text[])
		ORDER BY stream_id, version`, userID, sessionID, eventTypes)
}

// StreamOpening returns the first event of a stream (none for a stream
// that has none) as the log holds it: sealed, for the ids it keeps in the
// clear, which say whom the stream belongs to. Like UserEvents it reads
// every committed event.
func (s *Store) StreamOpening(ctx context.Context, streamID string) ([]Recorded, error) {
	return s.queryRaw(ctx, `SELECT `+Columns+` FROM events WHERE stream_id = $1 AND version = 1`, streamID)
}

// MessageOpening is MessageAppendedEvent as the log holds it: sealed, for
// the ids it keeps in the clear.
func (s *Store) MessageOpening(ctx context.Context, messageID string) ([]Recorded, error) {
	return s.queryRaw(ctx, `SELECT `+Columns+` FROM events
		WHERE event_type = 'message.appended' AND data->>'message_id' = $1`, messageID)
}
