package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// relayLock is the advisory lock key the relay holds while it runs
// ("arq-live-relay" hashed once).
const relayLock int64 = 0x61727172656c6179

// Relay publishes the log's new events, in commit-safe order, to the live
// topic, from a cursor it keeps in live_relay so a successor resumes where
// it stopped. Only the holder of the advisory lock relays.
type Relay struct {
	pool     *pgxpool.Pool
	store    *eventstore.Store
	notifier *eventstore.Notifier
	pub      message.Publisher // nil: no Redis
	topic    string
	local    *Hub
	log      *slog.Logger
}

// NewRelay returns a Relay that publishes to topic through pub, or to
// local alone when pub is nil or failing.
func NewRelay(pool *pgxpool.Pool, store *eventstore.Store, n *eventstore.Notifier, pub message.Publisher, topic string, local *Hub, log *slog.Logger) *Relay {
	return &Relay{pool: pool, store: store, notifier: n, pub: pub, topic: topic, local: local, log: log}
}

// Run relays while it holds the lock, and waits for it otherwise, until
// ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := r.lead(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("live relay failed, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// lead takes the lock on a connection of its own and relays until ctx ends
// or the connection fails; it returns at once when another instance leads.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, relayLock).Scan(&got); err != nil {
		return fmt.Errorf("take relay lock: %w", err)
	}
	if !got {
		return nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, relayLock)
	}()
	cursor, err := r.start(ctx)
	if err != nil {
		return err
	}
	r.log.Debug("live relay leading", "from", cursor.String())
	redisOK := true
	// The cursor is saved at most once a saveEvery while events flow, and
	// as soon as they pause: a successor after a crash publishes again
	// what came since (at most that long), which every instance's hub
	// drops as already delivered (Hub.Deliver), instead of a write of
	// the cursor after every append.
	saved, savedAt := cursor, time.Now()
	save := func(ctx context.Context) error {
		if saved == cursor {
			return nil
		}
		if _, err := conn.Exec(ctx, `UPDATE live_relay SET transaction_id = $1::text::xid8, position = $2`,
			fmt.Sprint(cursor.TransactionID), cursor.Position); err != nil {
			return fmt.Errorf("save relay cursor: %w", err)
		}
		saved, savedAt = cursor, time.Now()
		return nil
	}
	defer func() { _ = save(context.WithoutCancel(ctx)) }()
	for {
		seen := r.notifier.Generation()
		// Sealed: the topic keeps thousands of events with no expiry, and
		// what an erasure shreds must be unreadable there too. Readers
		// open them as they hand them out.
		events, err := r.store.ReadAll(ctx, cursor, 500, eventstore.Filter{Sealed: true})
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if len(events) > 0 {
			r.publish(cursor, events, &redisOK)
			cursor = events[len(events)-1].Cursor()
			if time.Since(savedAt) >= saveEvery {
				if err := save(ctx); err != nil {
					return err
				}
			}
			if len(events) == 500 {
				continue
			}
		} else if err := save(ctx); err != nil {
			return err
		}
		if r.notifier.Wait(ctx, seen, 250*time.Millisecond) {
			// Appends come in runs: gather a few milliseconds of them
			// into one read of the log and one publish.
			select {
			case <-ctx.Done():
			case <-time.After(gather):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// gather is how long the relay waits after a wake-up before it reads
// the log, so that the appends of a busy moment are relayed together.
const gather = 3 * time.Millisecond

// saveEvery bounds how long the relay goes without saving its cursor
// while events flow.
const saveEvery = time.Second

// start reads the relay's cursor; the first relay starts at the head of
// the log (live updates are about what happens from now on).
func (r *Relay) start(ctx context.Context) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	err := r.pool.QueryRow(ctx, `SELECT transaction_id::text::bigint, position FROM live_relay`).Scan(&c.TransactionID, &c.Position)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("read relay cursor: %w", err)
	}
	// From the visible head: an event that commits later, even behind an
	// older open transaction, comes after it in the relay's reading.
	if c, err = r.store.Head(ctx); err != nil {
		return c, err
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO live_relay (transaction_id, position) VALUES ($1::text::xid8, $2)`,
		fmt.Sprint(c.TransactionID), c.Position); err != nil {
		return c, fmt.Errorf("save relay cursor: %w", err)
	}
	return c, nil
}

// publish sends a page of events, the first of them right after prev,
// to the topic in one call, or, when there is no Redis or it fails, to
// this instance's hub. Each message names the event before it, so that
// the instances that did not get a page see the gap when the next one
// reaches them (see Hub.Deliver).
func (r *Relay) publish(prev eventstore.Cursor, events []eventstore.Recorded, redisOK *bool) {
	if r.pub != nil {
		msgs := make([]*message.Message, 0, len(events))
		var err error
		p := prev
		for _, e := range events {
			payload, jerr := json.Marshal(e)
			if jerr != nil {
				err = jerr
				break
			}
			m := message.NewMessage(watermill.NewULID(), payload)
			m.Metadata.Set(prevKey, p.String())
			msgs = append(msgs, m)
			p = e.Cursor()
		}
		if err == nil {
			err = r.pub.Publish(r.topic, msgs...)
		}
		if err == nil {
			if !*redisOK {
				r.log.Info("live updates go through Redis again")
			}
			*redisOK = true
			return
		}
		if *redisOK {
			r.log.Warn("live updates: Redis unreachable, delivering in this instance only", "err", err)
		}
		*redisOK = false
	}
	for _, e := range events {
		r.local.Deliver(prev, e)
		prev = e.Cursor()
	}
}
