package projections

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

const (
	hotPoll  = 10 * time.Millisecond
	errPause = 500 * time.Millisecond
)

// waker is the subscriber's BackoffManager. Instead of sleeping a fixed
// poll interval it waits for the Notifier, so an idle projector sees a new
// event within milliseconds, and it retries at once, with jitter, when
// another process holds the projection's checkpoint.
type waker struct {
	ctx      context.Context
	pool     *pgxpool.Pool
	n        *eventstore.Notifier
	idlePoll time.Duration
	linger   time.Duration
	log      *slog.Logger
	// full reports whether the last batch took as many events as a poll
	// may bring, so more may be waiting without a new notification.
	full     func() bool
	seen     uint64
	hotUntil time.Time
}

func newWaker(ctx context.Context, pool *pgxpool.Pool, n *eventstore.Notifier, cfg Config, log *slog.Logger, full func() bool) *waker {
	return &waker{ctx: ctx, pool: pool, n: n, idlePoll: cfg.IdlePoll, linger: cfg.Linger, log: log, full: full}
}

// HandleError is called after every poll of the log and returns how long to
// wait before the next; it does the waiting itself when idle, because only
// it knows when a notification arrives.
func (w *waker) HandleError(_ watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	defer func() { w.seen = w.n.Generation() }() // taken before the next poll starts
	switch {
	case err != nil && w.ctx.Err() != nil:
		return 0
	case err != nil && errors.Is(err, errBatchFailed):
		return 0 // replay the batch at once, event by event
	case err != nil && contended(err):
		// Another process applied a batch of this projection first.
		return time.Duration(5+rand.IntN(20)) * time.Millisecond
	case err != nil:
		w.log.Warn("reading the event log failed, retrying", "err", err, "in", errPause)
		return errPause
	case !noMsg:
		w.hotUntil = time.Now().Add(w.linger)
		if !w.full() {
			// The poll drained what was notified before it began; what
			// came since has bumped the generation and returns at once.
			// Polling again right away would mostly find nothing.
			w.n.Wait(w.ctx, w.seen, hotPoll)
		}
		return 0
	case time.Now().Before(w.hotUntil):
		w.n.Wait(w.ctx, w.seen, hotPoll)
		return 0
	case w.hidden():
		// An event is committed or being written below a transaction
		// that is still open (anywhere in the cluster): its notification
		// may have come and gone, so keep polling until it shows.
		w.hotUntil = time.Now().Add(w.linger)
		w.n.Wait(w.ctx, w.seen, hotPoll)
		return 0
	default:
		if w.n.Wait(w.ctx, w.seen, w.idlePoll) {
			w.hotUntil = time.Now().Add(w.linger)
		}
		return 0
	}
}

// contended reports a serialisation failure or deadlock, which is how two
// subscribers of one consumer group meet on the checkpoint row.
func contended(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// hidden reports whether the log holds events that commit-safe readers
// cannot see yet, because a transaction older than theirs is still open.
// Before going idle a projector asks, so that a notification which came
// while such an event was hidden is not lost until the next safety poll.
func (w *waker) hidden() bool {
	var hidden bool
	err := w.pool.QueryRow(w.ctx, `SELECT EXISTS (
		SELECT 1 FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot()))`).Scan(&hidden)
	if err != nil && w.ctx.Err() == nil {
		w.log.Warn("probing the log for hidden events failed", "err", err)
	}
	return hidden
}
