package readmodel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Extractions projects how far each session's messages are extracted:
// the last message of its newest extraction run, and the version of its
// user's extraction stream that run left, the highest of which is where
// the user's next run is recorded after.
type Extractions struct{}

// Name is "extractions".
func (Extractions) Name() string { return "extractions" }

// Tables is extraction_progress.
func (Extractions) Tables() []string { return []string{"extraction_progress"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Extractions) EventTypes() []string {
	return []string{domain.SessionExtracted, domain.UserDeleted, domain.UserErased}
}

// Apply folds extraction runs; a user's deletion or erasure removes the
// user's rows. A run by hand over messages extracted before moves the
// version, not the place.
func (Extractions) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.UserDeleted, domain.UserErased:
		tx.Exec(`DELETE FROM extraction_progress WHERE user_id = $1`, entityID(e))
		return nil
	case domain.SessionExtracted:
	default:
		return nil
	}
	ev, err := decode(e)
	if err != nil {
		return err
	}
	d := ev.Data.(domain.SessionExtractedData)
	tx.Exec(`INSERT INTO extraction_progress (session_id, user_id, tenant, through_seq, version, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (session_id) DO UPDATE SET through_seq = greatest(extraction_progress.through_seq, excluded.through_seq),
			version = excluded.version, updated_at = excluded.updated_at`,
		d.SessionID, d.UserID, e.Metadata.Tenant, d.ToSeq, e.Version, e.RecordedAt)
	return nil
}

// ExtractionRules say when a session is due for an extraction.
type ExtractionRules struct {
	// Batch is how many user messages wait before a run (1: after each
	// user turn).
	Batch int
	// Idle is how long a session's newest user message waits before a
	// run takes fewer than Batch.
	Idle time.Duration
	// Lookback bounds the sessions looked at to those with a user message
	// this recent: the background pass never reaches back into a log
	// that predates it (a run by hand does).
	Lookback time.Duration
	// MaxMessages bounds one run; the rest waits for the next.
	MaxMessages int
}

// DueExtractions returns up to limit sessions due for an extraction at
// now, longest waiting first but those in last after all others, leaving
// out those in skip. The candidates come by index from the sessions with
// a user message since the lookback and none extracted after it.
func (r *Reader) DueExtractions(ctx context.Context, rules ExtractionRules, now time.Time, limit int, skip, last []string) ([]domain.DueExtraction, error) {
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `SELECT b.session_id, b.user_id,
			coalesce((SELECT max(version) FROM extraction_progress WHERE user_id = b.user_id), 0),
			coalesce(x.through_seq, 0), b.last_user_at
		FROM session_backlog b LEFT JOIN extraction_progress x ON x.session_id = b.session_id
		WHERE b.last_user_at > $1 AND b.last_user_seq > coalesce(x.through_seq, 0) AND b.session_id <> ALL ($3::text[])
		ORDER BY b.session_id = ANY ($4::text[]), b.last_user_at LIMIT $2`, now.Add(-rules.Lookback), limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("find sessions due for an extraction: %w", err)
	}
	type cand struct {
		d       domain.DueExtraction
		through int
		lastAt  time.Time
	}
	cands, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cand, error) {
		var c cand
		return c, row.Scan(&c.d.SessionID, &c.d.UserID, &c.d.After, &c.through, &c.lastAt)
	})
	if err != nil {
		return nil, fmt.Errorf("find sessions due for an extraction: %w", err)
	}
	var out []domain.DueExtraction
	for _, c := range cands {
		// A run reads at most MaxMessages: no more are read here. As many
		// make a run whatever their roles (the next run goes on from
		// them); fewer wait for the batch or the idle time.
		msgs, err := r.messagesAfter(ctx, c.d.SessionID, c.through, rules.MaxMessages)
		if err != nil {
			return nil, err
		}
		users := 0
		for _, m := range msgs {
			if m.Role == domain.RoleUser.String() {
				users++
			}
		}
		full := rules.MaxMessages > 0 && len(msgs) == rules.MaxMessages
		if !full && (users == 0 || users < rules.Batch && now.Sub(c.lastAt) < rules.Idle) {
			continue
		}
		out = append(out, dueOf(c.d, msgs))
	}
	return out, nil
}

// ExtractionOf is a run by hand over a session's messages created at or
// after since (all of them for the zero time), whatever was extracted
// before. After is left to the caller, which reads it from the log. ErrNotFound: no such session, or
// no message in range.
func (r *Reader) ExtractionOf(ctx context.Context, sessionID string, since time.Time) (domain.DueExtraction, error) {
	d := domain.DueExtraction{SessionID: sessionID}
	err := r.db.QueryRow(ctx, `SELECT user_id FROM sessions WHERE id = $1`, sessionID).Scan(&d.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("%w: session %s", domain.ErrNotFound, sessionID)
	} else if err != nil {
		return d, fmt.Errorf("read session %s: %w", sessionID, err)
	}
	msgs, err := r.MessagesAfter(ctx, sessionID, 0)
	if err != nil {
		return d, err
	}
	kept := msgs[:0]
	for _, m := range msgs {
		if !m.CreatedAt.Before(since) {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		return d, fmt.Errorf("%w: no message of session %s since %s", domain.ErrNotFound, sessionID, since.Format(time.RFC3339))
	}
	return dueOf(d, kept), nil
}

// SessionsOfUser lists the ids of a user's sessions, oldest first.
func (r *Reader) SessionsOfUser(ctx context.Context, userID string) ([]string, error) {
	rows, err := r.db.Query(ctx, `SELECT id FROM sessions WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	return ids, nil
}

func dueOf(d domain.DueExtraction, msgs []Message) domain.DueExtraction {
	d.FromSeq, d.ToSeq = msgs[0].Seq, msgs[len(msgs)-1].Seq
	for _, m := range msgs {
		d.Lines = append(d.Lines, domain.TranscriptLine{Role: m.Role, Content: m.Content})
		d.Messages = append(d.Messages, domain.SourceMessage{ID: m.ID, Seq: m.Seq, Version: m.Version})
	}
	return d
}
