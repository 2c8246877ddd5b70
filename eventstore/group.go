package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Group commit: appends that arrive while others are being written wait
// and then go together, in one transaction of two statements sent in one
// round trip: one takes their streams' locks, one writes them. Under
// concurrent load this pays the statement's start, the round trip and
// the commit's WAL flush once per batch instead of once per append. An
// append that finds a free slot goes at once, alone or with whatever is
// waiting, so a lone writer waits for nothing.
//
// Each append in a batch still happens entirely or not at all: the
// statement writes an append's events only if every one of its streams
// is as expected, and an append it leaves out is done again on its own,
// by the statements of a lone append, which name the conflict. If the
// batch fails (a repeated event id, a value Postgres refuses), every
// append of the batch is done again on its own.

// maxBatchStreams bounds the streams a batch names.
const maxBatchStreams = 256

// maxGroupedStreams bounds the streams of an append that may join a batch.
const maxGroupedStreams = 8

// WithGroupCommit lets up to n batches of appends be written at once (see
// above); 0 writes every append on its own. The default is
// DefaultGroupCommit.
func WithGroupCommit(n int) Option {
	return func(s *Store) {
		if n <= 0 {
			s.group = nil
			return
		}
		s.group = newGroup(n)
	}
}

// DefaultGroupCommit is the number of batches written at once unless
// WithGroupCommit says otherwise: enough to keep a few connections busy
// while the others' appends gather into the next batches.
const DefaultGroupCommit = 2

// group gathers appends into batches.
type group struct {
	mu      sync.Mutex
	queue   []*pending
	running int // leaders, each writing a batch; at most limit
	limit   int
	// writing holds the streams of the batches being written: -1 for a
	// stream one of them writes, else how many appends guard it.
	writing map[string]int
}

func newGroup(limit int) *group { return &group{limit: limit, writing: map[string]int{}} }

// pending is one append waiting in, or written by, a batch.
type pending struct {
	args  []appendArgs
	taken bool // by a batch; under group.mu
	done  chan struct{}
	res   []AppendResult
	err   error
}

// groupable tells whether an append may join a batch: every stream gets
// one event or is a guard at an exact version.
func groupable(args []appendArgs) bool {
	if len(args) > maxGroupedStreams {
		return false
	}
	for _, a := range args {
		if len(a.ids) > 1 || (a.guard() && a.expected.v < 0) {
			return false
		}
	}
	return true
}

// append queues args and returns their result once a batch wrote them.
func (g *group) append(ctx context.Context, s *Store, args []appendArgs) ([]AppendResult, error) {
	p := &pending{args: args, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	lead := g.running < g.limit
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		// The leader writes others' appends too: it must not stop when
		// this caller gives up, and this caller must not wait for it
		// beyond its own append.
		go g.lead(context.WithoutCancel(ctx), s)
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !p.taken {
		// Still queued: it is never written, and the caller may say so.
		for i, q := range g.queue {
			if q == p {
				g.queue = append(g.queue[:i], g.queue[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		return nil, fmt.Errorf("append: %w", ctx.Err())
	}
	g.mu.Unlock()
	// In a batch being written: it may commit whatever the caller wants
	// now, so the caller hears how it ended (a client retrying an append
	// it was told failed would append it twice). Only a batch stuck for
	// longer than s.outcomeWait leaves the outcome unknown.
	t := time.NewTimer(s.outcomeWait)
	defer t.Stop()
	select {
	case <-p.done:
		return p.res, p.err
	case <-t.C:
		return nil, fmt.Errorf("append: %w (%w): its batch has not ended %s after", ErrOutcomeUnknown, ctx.Err(), s.outcomeWait)
	}
}

// lead writes one batch on a goroutine of its own (no caller waits for
// more than its append's batch), then hands the slot to a new leader if appends
// are waiting.
func (g *group) lead(ctx context.Context, s *Store) {
	batch := g.take()
	if len(batch) == 0 {
		return // take gave up the slot
	}
	s.appendBatch(ctx, batch, time.Now().Add(s.appendLimit))
	g.mu.Lock()
	for _, p := range batch {
		for _, a := range p.args {
			if n := g.writing[a.streamID]; n > 1 {
				g.writing[a.streamID] = n - 1
			} else {
				delete(g.writing, a.streamID)
			}
		}
	}
	more := len(g.queue) > 0
	if !more {
		g.running--
	}
	g.mu.Unlock()
	if more {
		go g.lead(ctx, s)
	}
}

// take removes the next batch from the queue: appends in arrival order
// that write no stream a batch being written or an earlier append of the
// queue names, and guard none they write, so that each stream's appends
// are decided one after the other, in order. Appends that only guard a
// stream (the sessions of one user guard the user) go together, as their
// shared locks do. With nothing to take it gives up the leader's slot:
// whatever waits, waits for a batch being written, whose leader takes the
// next one.
func (g *group) take() []*pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	var batch []*pending
	named := make(map[string]bool) // true: written, false: guarded
	streams := 0
	rest := g.queue[:0]
	for _, p := range g.queue {
		skip := streams+len(p.args) > maxBatchStreams || g.busy(p.args) || clashes(named, p.args)
		for _, a := range p.args {
			named[a.streamID] = named[a.streamID] || !a.guard() // a skipped append holds its streams too
		}
		if skip {
			rest = append(rest, p)
			continue
		}
		streams += len(p.args)
		p.taken = true
		batch = append(batch, p)
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	for _, p := range batch {
		for _, a := range p.args {
			if a.guard() {
				g.writing[a.streamID]++
			} else {
				g.writing[a.streamID] = -1
			}
		}
	}
	if len(batch) == 0 {
		g.running--
	}
	return batch
}

// busy tells whether args write a stream a batch being written names, or
// guard one it writes.
func (g *group) busy(args []appendArgs) bool {
	for _, a := range args {
		if n := g.writing[a.streamID]; n < 0 || n > 0 && !a.guard() {
			return true
		}
	}
	return false
}

// clashes tells whether args write a stream named (written or guarded),
// or guard one written.
func clashes(named map[string]bool, args []appendArgs) bool {
	for _, a := range args {
		if written, ok := named[a.streamID]; ok && (written || !a.guard()) {
			return true
		}
	}
	return false
}

// batchSQL writes a batch, sent in one transaction after lockStreamsSQL
// has taken the locks of all its streams, so that it reads every head,
// guards included, with a snapshot taken under the locks. It has one row
// of parameters per stream of each append ($1 the append's index in the
// batch; a guard has an empty event id), and inserts the events of the appends
// whose every stream is as expected, in parameter order.
const batchSQL = `WITH s AS (
		SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::integer[], $8::jsonb[], $9::jsonb[])
			WITH ORDINALITY AS s(p, sid, st, exp, id, typ, sv, d, m, ord)
	), h AS (
		SELECT s.*, coalesce(head.version, 0) AS hv, head.stream_type AS ht, head.hash AS hh
		FROM s LEFT JOIN LATERAL (
			SELECT version, stream_type, hash FROM events WHERE stream_id = s.sid ORDER BY version DESC LIMIT 1
		) head ON true
	), ok AS (
		SELECT p FROM h GROUP BY p HAVING bool_and((exp < 0 OR hv = exp) AND coalesce(ht, st) = st)
	)
	INSERT INTO events AS e (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, hash)
	SELECT id, sid, st, hv + 1, typ, sv, d, m, now(), arq_event_hash(hh, id, sid, st, hv + 1, typ, sv, now(), d, m)
	FROM h WHERE id <> '' AND p IN (SELECT p FROM ok)
	ORDER BY ord
	RETURNING e.stream_id, e.event_id, e.position, e.version, e.transaction_id, e.recorded_at`

// appendBatch writes a batch and hands each append its result. An append
// the batch statement left out, or every append when it failed, is done
// again on its own (see appendDirect), which names its conflict. All of it
// ends by deadline (AppendLimit from the batch's start): a batch statement
// cut short then may have committed, so its appends are not done again
// but told ErrOutcomeUnknown.
func (s *Store) appendBatch(ctx context.Context, batch []*pending, deadline time.Time) {
	if len(batch) == 1 {
		p := batch[0]
		p.res, p.err = s.appendDirect(ctx, p.args, deadline)
		close(p.done)
		return
	}
	batchCtx, cancel := context.WithDeadline(ctx, deadline)
	placed, err := s.writeBatch(batchCtx, batch)
	cutShort := err != nil && errors.Is(batchCtx.Err(), context.DeadlineExceeded)
	cancel()
	if cutShort || lostInFlight(err) {
		// The batch may have committed: its appends are not done again.
		for _, p := range batch {
			p.err = fmt.Errorf("append: %w: the batch ran past %s or lost its connection: %w", ErrOutcomeUnknown, s.appendLimit, err)
			close(p.done)
		}
		return
	}
	if err != nil {
		s.log.Info("a batch of appends failed; each is done again on its own", "appends", len(batch), "err", err)
	}
	var wrote []Appended
	for _, p := range batch {
		if err == nil {
			if res, ok := batchResult(p.args, placed); ok {
				p.res = res
				if a, ok := appended(p.args, res); ok {
					wrote = append(wrote, a)
				}
				close(p.done)
				continue
			}
		}
		p.res, p.err = s.appendDirect(ctx, p.args, deadline)
		close(p.done)
	}
	if len(wrote) > 0 {
		s.onAppend(wrote...)
	}
}

// writeBatch runs batchSQL and returns where each written event landed.
func (s *Store) writeBatch(ctx context.Context, batch []*pending) (map[placedKey]Placed, error) {
	var (
		idx            []int32
		sids, sts      []string
		writes         []bool
		exps           []int64
		ids, typs      []string
		svs            []int32
		data, metadata []string
	)
	for i, p := range batch {
		for _, a := range p.args {
			idx, sids, sts, exps = append(idx, int32(i)), append(sids, a.streamID), append(sts, a.streamType), append(exps, a.expected.v)
			writes = append(writes, !a.guard())
			if a.guard() {
				ids, typs, svs = append(ids, ""), append(typs, ""), append(svs, 1)
				data, metadata = append(data, "{}"), append(metadata, "{}")
				continue
			}
			ids, typs, svs = append(ids, a.ids[0]), append(typs, a.types[0]), append(svs, a.schemaVersions[0])
			data, metadata = append(data, a.data[0]), append(metadata, a.metadata[0])
		}
	}
	// pgx sends a batch as one implicit transaction: the locks, then the
	// statement that reads the heads under them.
	b := &pgx.Batch{}
	b.Queue(lockStreamsSQL, sids, writes)
	for _, p := range batch {
		if k := p.args[0].keep; k != nil {
			b.Queue(k.SQL, k.Args...)
		}
	}
	placed := make(map[placedKey]Placed, len(ids))
	b.Queue(batchSQL, idx, sids, sts, exps, ids, typs, svs, data, metadata).Query(func(rows pgx.Rows) error {
		return eachPlaced(rows, func(stream string, p Placed) { placed[placedKey{stream, p.EventID}] = p })
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("append batch: %w", err)
	}
	return placed, nil
}

// placedKey names an event a batch placed by its stream as well as its id:
// two appends of a batch may carry the same event id, and the one left out
// must not take the other's result.
type placedKey struct{ stream, eventID string }

// batchResult is an append's result from the events a batch placed, and
// false if the batch left it out. The statement writes all of an append
// or none of it.
func batchResult(args []appendArgs, placed map[placedKey]Placed) ([]AppendResult, bool) {
	res := make([]AppendResult, len(args))
	for i, a := range args {
		if a.guard() {
			res[i] = AppendResult{StreamID: a.streamID, Version: int(a.expected.v)}
			continue
		}
		p, ok := placed[placedKey{a.streamID, a.ids[0]}]
		if !ok {
			return nil, false
		}
		res[i] = AppendResult{StreamID: a.streamID, Version: p.Version, Events: []Placed{p}}
	}
	return res, true
}
