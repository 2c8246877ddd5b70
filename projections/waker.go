package projections

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
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
//
// A projection of some event types only (Selective) is woken by appends
// of those types, and sleeps through the others: its checkpoint moves
// over them at its next poll, at the latest after IdlePoll, or when a
// reader waiting for it pokes the Notifier (Waiter.Wait). A one-client
// message append then costs a poll of the projections that apply
// messages, not of every projection.
type waker struct {
	ctx      context.Context
	pool     *pgxpool.Pool
	n        *eventstore.Notifier
	idlePoll time.Duration
	log      *slog.Logger
	// name is the projection's, whose checkpoint pending reads.
	name string
	// types are the event types whose appends wake it; nil: all.
	types []string
	// until, when set, bounds what the projection applies (Config.Until).
	until func() eventstore.Cursor
	// full reports whether the last batch took as many events as a poll
	// may bring, so more may be waiting without a new notification.
	full func() bool
	// applied reports whether the last batch held an event of types,
	// not only the last of others it moved the checkpoint over.
	applied func() bool
	seen    uint64
}

func newWaker(ctx context.Context, pool *pgxpool.Pool, n *eventstore.Notifier, cfg Config, log *slog.Logger, name string, types []string, full, applied func() bool) *waker {
	return &waker{ctx: ctx, pool: pool, n: n, idlePoll: cfg.IdlePoll, until: cfg.Until, log: log, name: name, types: types, full: full, applied: applied}
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
	case !noMsg && w.full():
		return 0 // more may be waiting
	}
	// The poll drained what was notified before it began; what came
	// since has bumped the generation and returns at once. After a batch
	// it applied, the next notification is likely soon: wait for it a
	// little before looking whether anything is pending.
	if !noMsg && w.applied() && w.n.WaitFor(w.ctx, w.seen, w.types, hotPoll) {
		return 0
	}
	if w.pending() {
		// An event of its types is committed, but the poll did not see
		// it: it is hidden below a transaction still open (anywhere in
		// the cluster), or was until just now. Its notification may have
		// come and gone, so keep polling until it shows.
		w.n.WaitFor(w.ctx, w.seen, w.types, hotPoll)
		return 0
	}
	// Nothing of its types waits (a batch of others' only moved the
	// checkpoint): sleep until one is appended, or the safety poll.
	w.n.WaitFor(w.ctx, w.seen, w.types, w.idlePoll)
	return 0
}

// contended reports a serialisation failure or deadlock, which is how two
// subscribers of one consumer group meet on the checkpoint row.
func contended(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// pending reports whether the log holds events of the types that wake
// it after the projection's checkpoint (up to Config.Until), committed,
// whether commit-safe readers can see them yet or not (a transaction
// older than theirs still open hides them). Before going idle a
// projector asks: an event whose notification came while it was hidden
// from the poll it caused would otherwise wait for the safety poll.
// Events of the types it defers wait for that poll, or for a reader's
// pokes (see Waiter.Wait).
func (w *waker) pending() bool {
	q := `WITH c AS (SELECT last_processed_transaction_id AS x, coalesce(offset_acked, 0) AS p
			FROM ` + checkpointTable + ` WHERE consumer_group = $1)
		SELECT NOT EXISTS (SELECT 1 FROM c) OR (SELECT true FROM events
			WHERE (transaction_id, position) > ((SELECT x FROM c), (SELECT p FROM c))
			AND ($2::text[] IS NULL OR event_type = ANY ($2::text[]))`
	if w.until != nil {
		u := w.until()
		q += ` AND (transaction_id, position) <= ('` + strconv.FormatUint(u.TransactionID, 10) + `'::xid8, ` + strconv.FormatInt(u.Position, 10) + `)`
	}
	var pending bool
	// In log order with a limit, the scan walks the log's primary key
	// from the checkpoint (an EXISTS would be planned as a scan of all).
	err := w.pool.QueryRow(w.ctx, q+` ORDER BY transaction_id, position LIMIT 1) IS NOT NULL`, w.name, typesArg(w.types)).Scan(&pending)
	if err != nil && w.ctx.Err() == nil {
		w.log.Warn("probing the log for pending events failed", "err", err)
		return true // poll again soon rather than sleep on a missed event
	}
	return pending
}

// typesArg is types as a query argument: NULL for all.
func typesArg(types []string) any {
	if types == nil {
		return nil
	}
	return types
}
