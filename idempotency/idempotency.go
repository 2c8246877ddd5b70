// Package idempotency keeps, in Postgres, the answers to requests sent
// with an Idempotency-Key, so that a retry is answered again rather than
// applied twice. The HTTP middleware (api.Idempotency) decides what to
// keep and when a claim is abandoned; this package stores, finds and
// prunes.
//
// Erasure: an answer kept may quote, for its day, what its request wrote
// (a user's profile, a message, a memory). When that is erased, Erase
// finds the requests behind the erased events by the idempotency_key and
// actor in the events' metadata, and puts in place of their answers the
// mark of an erased one: status 410 and no body (Answer.Erased). A retry
// with such a key is answered 410 Gone and never runs again, so a create
// for an erased user is not applied twice either.
//
// Tenancy: keys are kept per actor, and an actor's key belongs to one
// tenant, so erasing a tenant deletes its actors' rows here.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// TTL is how long an answer is kept: longer than any client retries.
const TTL = 24 * time.Hour

// Answer is an answer kept for a retry.
type Answer struct {
	Status  int
	Headers map[string]string
	Body    []byte
	// Erased: the answer was forgotten, as its request's data was erased
	// (see Erase); Status is 410 and there is no body.
	Erased bool
}

// Held is what a key holds: the fingerprint of the request that claimed
// it, its answer (nil while that request runs), how long ago it was
// claimed (by the database's clock), and the transaction that claimed it.
type Held struct {
	Fingerprint string
	Answer      *Answer
	Age         time.Duration
	ClaimedIn   uint64
}

// Applied is what the log holds of a request that claimed a key: the
// stream its first event went to, that stream's version after the
// request, the messages it appended there (a message append), and the
// position of its last event.
type Applied struct {
	Stream   string
	Version  int
	Messages []Message
	Last     eventstore.Cursor
}

// Message is a message a request appended and its place in the session.
type Message struct {
	ID  string
	Seq int
}

// Store keeps the answers in the idempotency_keys table.
type Store struct{ db *pgxpool.Pool }

// New returns a Store over db.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Claim takes the key of actor for the request with fingerprint fp; ok is
// false when the key is held already (see Held). A claim is named by the
// transaction it was taken in (token): saving or releasing it touches that
// claim only, never one another request took after it was abandoned.
func (s *Store) Claim(ctx context.Context, actor, key, fp string) (token uint64, ok bool, err error) {
	err = s.db.QueryRow(ctx, `INSERT INTO idempotency_keys (actor, key, fingerprint) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING claimed_in`, actor, key, fp).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return token, true, nil
}

// Held reads what actor's key holds; ok is false when nothing does (it
// was released meanwhile).
func (s *Store) Held(ctx context.Context, actor, key string) (h Held, ok bool, err error) {
	var status *int
	var headers, body []byte
	var ageSeconds float64
	err = s.db.QueryRow(ctx, `SELECT fingerprint, status, headers, body, extract(epoch FROM now() - created_at)::float8, claimed_in
			FROM idempotency_keys WHERE actor = $1 AND key = $2`,
		actor, key).Scan(&h.Fingerprint, &status, &headers, &body, &ageSeconds, &h.ClaimedIn)
	if errors.Is(err, pgx.ErrNoRows) {
		return Held{}, false, nil
	}
	if err != nil {
		return Held{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	h.Age = time.Duration(ageSeconds * float64(time.Second))
	if status != nil {
		h.Answer = &Answer{Status: *status, Body: body, Erased: *status == erasedStatus && body == nil}
		if headers != nil {
			if err := json.Unmarshal(headers, &h.Answer.Headers); err != nil {
				return Held{}, false, fmt.Errorf("read idempotency key: %w", err)
			}
		}
	}
	return h, true, nil
}

// Applied looks in the log for the events of the request that claimed
// actor's key in transaction claimedIn: after that transaction, with the
// key and the actor in their metadata. ok is false when there are none.
func (s *Store) Applied(ctx context.Context, actor, key string, claimedIn uint64) (a Applied, ok bool, err error) {
	rows, err := s.db.Query(ctx, `SELECT stream_id, version, transaction_id, position, coalesce(data->>'message_id', '') FROM events
		WHERE transaction_id > $3::xid8 AND metadata->>'idempotency_key' = $2 AND metadata->>'actor' = $1
		ORDER BY transaction_id, position`, actor, key, claimedIn)
	if err != nil {
		return Applied{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var stream, messageID string
		var v int
		var c eventstore.Cursor
		if err := rows.Scan(&stream, &v, &c.TransactionID, &c.Position, &messageID); err != nil {
			return Applied{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
		}
		if a.Stream == "" {
			a.Stream = stream
		}
		if stream == a.Stream {
			a.Version = v
			if messageID != "" {
				a.Messages = append(a.Messages, Message{ID: messageID, Seq: v})
			}
		}
		a.Last = c
	}
	if err := rows.Err(); err != nil {
		return Applied{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
	}
	return a, a.Stream != "", nil
}

// Save keeps the answer of the claim taken in transaction token (none if
// another request has taken the key since, or an erasure forgot the
// claim's answer before it came).
func (s *Store) Save(ctx context.Context, actor, key string, token uint64, a Answer) error {
	h, err := json.Marshal(a.Headers)
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	_, err = s.db.Exec(ctx, `UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
			WHERE actor = $1 AND key = $2 AND claimed_in = $6::xid8 AND status IS NULL`,
		actor, key, a.Status, h, a.Body, token)
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Release gives up the claim taken in transaction token (none if another
// request has taken the key since).
func (s *Store) Release(ctx context.Context, actor, key string, token uint64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND claimed_in = $3::xid8`,
		actor, key, token); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// Prune deletes the answers kept longer than a retry may come (TTL); it
// returns how many it deleted. A claim is also released when a request
// with its key finds it old, but keys never reused would stay forever.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval`, TTL.String())
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PruneEvery prunes at once and then every interval until ctx ends; a
// failure is logged, and the next round tries again.
func (s *Store) PruneEvery(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("idempotency keys: prune failed", "err", err)
		case n > 0:
			log.Info("idempotency keys: pruned answers past their day", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
