package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/arq-memory/arq/logproof"
)

// A walk reads the log in its commit-safe order and recomputes, in Go,
// each event's hash from its content, each stream's chain, and the tree's
// leaves and root. It runs as a pipeline, a goroutine a stage: the reader
// decodes rows (binary format) into batches; the sequencer follows each
// stream (its last version and stored hash: all the state a stream keeps);
// the hasher hashes each event's content over its predecessor's stored
// hash; the caller's goroutine judges the chain and adds the leaves.

// walkBatchRows is how many events travel down the pipeline together.
const walkBatchRows = 1024

// maxProblems bounds the breaks a walk keeps; it counts them all.
const maxProblems = 10_000

// walkSpec is what a walk checks.
type walkSpec struct {
	// start is the tree of the leaves before the walk's first, verified
	// before (empty for a walk from the beginning); the walk starts after
	// the event (afterXID, afterPos), the last of them.
	start    logproof.Leaves
	afterXID uint64
	afterPos int64
	// size is the checkpoint's: the leaves before it are checked against
	// root; events after it are only chain-checked, unless leavesOnly,
	// when the walk stops at size.
	size       int64
	root       tlog.Hash
	leavesOnly bool
}

// walkResult is what a walk found.
type walkResult struct {
	events, streams int64
	// leaves is how many of the checkpoint's leaves the log still holds
	// (start.size included).
	leaves int64
	rootOK bool
	// at is the tree at size and its last event, when the walk got there
	// and the root matched.
	at              logproof.Leaves
	atXID           uint64
	atPos           int64
	breaks          []Problem
	brokenLinks     int64
	firstDiff       *leafDiff
	storedTreeShort bool
	// ends is each walked stream's last version, for the catalog check.
	ends map[string]*streamState
}

// leafDiff is the first leaf whose recomputed hash differs from the one
// the stored tree holds, with what the stored tree says was there.
type leafDiff struct {
	leaf      int64
	event     *Problem // the event now at the leaf; nil when the log ran out
	storedPos int64
	// computed is the event's recomputed hash.
	computed [sha256.Size]byte
}

type walkRow struct {
	xid    uint64
	pos    int64
	f      hashFields
	hash   []byte // stored
	dbPrev []byte // the predecessor's stored hash, read by a walk from the middle
	// set by the sequencer
	prev    [sha256.Size]byte
	hasPrev bool
	problem string
	// set by the hasher: the hash of the content over prev
	content [sha256.Size]byte
}

type walkBatch struct {
	rows  []walkRow
	arena []byte
}

type streamState struct {
	hash    [sha256.Size]byte
	version int32
}

// walkColumns are the columns a walk reads, all in binary format; a
// walk from the middle reads each event's predecessor's stored hash too.
const walkColumns = `transaction_id, position, event_id, stream_id, stream_type, version, event_type,
	schema_version, recorded_at, data::text, metadata::text, hash`

// walk runs the pipeline over the events after s's start, in one
// read-only snapshot.
func (t *Tree) walk(ctx context.Context, s walkSpec, progress func(int64)) (walkResult, error) {
	res := walkResult{at: s.start.Clone(), leaves: s.start.Size()}
	tx, err := t.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return res, fmt.Errorf("check the log: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	middle := s.start.Size() > 0
	q := `SELECT ` + walkColumns + `, NULL::bytea FROM events e`
	if middle {
		q = `SELECT ` + walkColumns + `, (SELECT p.hash FROM events p WHERE p.stream_id = e.stream_id AND p.version = e.version - 1)
			FROM events e`
	}
	q += ` WHERE (transaction_id, position) > ($1::xid8, $2::bigint) ORDER BY transaction_id, position`
	args := []any{pgx.QueryResultFormats{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, s.afterXID, s.afterPos}
	if s.leavesOnly {
		q += ` LIMIT $3`
		args = append(args, s.size-s.start.Size())
	}

	g, gctx := errgroup.WithContext(ctx)
	free := make(chan *walkBatch, 8)
	for range cap(free) {
		free <- &walkBatch{rows: make([]walkRow, 0, walkBatchRows), arena: make([]byte, 0, 1<<20)}
	}
	toSeq, toHash, toTree := make(chan *walkBatch, 2), make(chan *walkBatch, 2), make(chan *walkBatch, 2)
	send := func(ch chan<- *walkBatch, b *walkBatch) error {
		select {
		case ch <- b:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}
	g.Go(func() error {
		defer close(toSeq)
		return readRows(gctx, tx, q, args, free, func(b *walkBatch) error { return send(toSeq, b) })
	})
	ends := map[string]*streamState{}
	g.Go(func() error {
		defer close(toHash)
		for b := range toSeq {
			sequence(b, ends, middle)
			if err := send(toHash, b); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		defer close(toTree)
		var buf []byte
		for b := range toHash {
			for i := range b.rows {
				r := &b.rows[i]
				var prev []byte
				if r.hasPrev {
					prev = r.prev[:]
				}
				buf = appendHashText(buf[:0], prev, r.f)
				r.content = sha256.Sum256(buf)
			}
			if err := send(toTree, b); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		j := judge{t: t, ctx: gctx, s: s, res: &res, diverged: map[string][sha256.Size]byte{}, index: s.start.Size()}
		for b := range toTree {
			if err := j.batch(b); err != nil {
				return err
			}
			if progress != nil {
				progress(res.events)
			}
			b.rows, b.arena = b.rows[:0], b.arena[:0]
			free <- b
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("check the log: %w", err)
	}
	res.streams = int64(len(ends))
	res.ends = ends
	if !middle && !s.leavesOnly { // the catalog is of the whole log
		if err := catalogEnds(ctx, tx, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// readRows runs q and hands its rows on in batches taken from free.
func readRows(ctx context.Context, tx pgx.Tx, q string, args []any, free chan *walkBatch, out func(*walkBatch) error) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	defer rows.Close()
	for _, fd := range rows.FieldDescriptions() {
		if fd.Format != pgx.BinaryFormatCode {
			return fmt.Errorf("read the log: column %s is not in binary format", fd.Name)
		}
	}
	var b *walkBatch
	for rows.Next() {
		if b == nil {
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := decodeRow(b, rows.RawValues()); err != nil {
			return err
		}
		if len(b.rows) == walkBatchRows {
			if err := out(b); err != nil {
				return err
			}
			b = nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	if b != nil {
		return out(b)
	}
	return nil
}

// pgEpochMicros is 2000-01-01, where Postgres' binary timestamps count
// from, in microseconds since 1970.
const pgEpochMicros = 946_684_800_000_000

// decodeRow appends a row of walkColumns, in binary format, to b,
// copying its values into b's arena.
func decodeRow(b *walkBatch, v [][]byte) error {
	if len(v) != 13 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[5]) != 4 || len(v[7]) != 4 || len(v[8]) != 8 {
		return fmt.Errorf("read the log: a row of an unexpected shape")
	}
	// The arena is sized so that it rarely grows; when it does, the rows
	// before keep the old array, which nothing writes again.
	start := len(b.arena)
	for _, i := range []int{2, 3, 4, 6, 9, 10, 11, 12} {
		b.arena = append(b.arena, v[i]...)
	}
	a := b.arena[start:]
	take := func(n int) []byte {
		s := a[:n:n]
		a = a[n:]
		return s
	}
	r := walkRow{
		xid: binary.BigEndian.Uint64(v[0]),
		pos: int64(binary.BigEndian.Uint64(v[1])),
	}
	r.f.eventID = take(len(v[2]))
	r.f.streamID = take(len(v[3]))
	r.f.streamType = take(len(v[4]))
	r.f.version = int32(binary.BigEndian.Uint32(v[5]))
	r.f.eventType = take(len(v[6]))
	r.f.schema = int32(binary.BigEndian.Uint32(v[7]))
	r.f.unixMicros = int64(binary.BigEndian.Uint64(v[8])) + pgEpochMicros
	r.f.data = take(len(v[9]))
	r.f.metadata = take(len(v[10]))
	r.hash = take(len(v[11]))
	if v[12] != nil {
		r.dbPrev = take(len(v[12]))
	}
	b.rows = append(b.rows, r)
	return nil
}

// sequence follows each stream through b: it gives each event its
// predecessor's stored hash and notes versions out of order.
func sequence(b *walkBatch, ends map[string]*streamState, middle bool) {
	for i := range b.rows {
		r := &b.rows[i]
		st := ends[string(r.f.streamID)]
		v := r.f.version
		switch {
		case st != nil:
			r.prev, r.hasPrev = st.hash, true
			switch {
			case v > st.version+1:
				r.problem = fmt.Sprintf("versions %d to %d are missing before this event", st.version+1, v-1)
			case v <= st.version:
				r.problem = fmt.Sprintf("version %d comes after version %d in the log: versions were changed or events moved", v, st.version)
			}
		case middle && r.dbPrev != nil:
			copy(r.prev[:], r.dbPrev)
			r.hasPrev = true
		case v > 1 && middle:
			r.problem = fmt.Sprintf("version %d is missing before this event", v-1)
		case v > 1:
			r.problem = fmt.Sprintf("versions 1 to %d are missing before this event", v-1)
		}
		if st == nil {
			st = &streamState{}
			ends[string(r.f.streamID)] = st
		}
		st.version = v
		copy(st.hash[:], r.hash)
	}
}

// judge is the last stage: it checks each event's stored hash against
// its content, and adds its leaf to the tree.
type judge struct {
	t     *Tree
	ctx   context.Context
	s     walkSpec
	res   *walkResult
	index int64 // the next event's place in the log's order
	tree  logproof.Leaves
	// diverged holds, for a stream whose recomputed chain left its stored
	// one, the last recomputed hash: its later events' leaves follow the
	// recomputed chain, so one edit changes the root however it was hidden.
	diverged map[string][sha256.Size]byte
	stored   storedLeaves
	buf      []byte
	started  bool
}

func (j *judge) batch(b *walkBatch) error {
	if !j.started {
		j.tree = j.s.start.Clone()
		j.stored = storedLeaves{ctx: j.ctx, t: j.t}
		j.started = true
	}
	for i := range b.rows {
		r := &b.rows[i]
		j.res.events++
		intact := len(r.hash) == sha256.Size && r.content == [sha256.Size]byte(r.hash)
		if r.problem != "" || !intact {
			p := r.problem
			if p == "" {
				p = "the stored hash does not match the event's content and its predecessor's hash: the event was changed or moved"
			}
			j.res.brokenLinks++
			if len(j.res.breaks) < maxProblems {
				j.res.breaks = append(j.res.breaks, eventProblem(r, j.index, KindBroken, p))
			}
		}
		computed := r.content
		if d, ok := j.diverged[string(r.f.streamID)]; ok {
			j.buf = appendHashText(j.buf[:0], d[:], r.f)
			computed = sha256.Sum256(j.buf)
		}
		if len(r.hash) == sha256.Size && computed == [sha256.Size]byte(r.hash) {
			delete(j.diverged, string(r.f.streamID))
		} else {
			j.diverged[string(r.f.streamID)] = computed
		}
		if j.index < j.s.size {
			leaf := logproof.LeafHash(computed[:], r.pos)
			if j.res.firstDiff == nil {
				if err := j.compare(r, computed, leaf); err != nil {
					return err
				}
			}
			j.tree.Add(leaf)
			j.res.leaves = j.tree.Size()
			if j.tree.Size() == j.s.size {
				j.res.rootOK = j.tree.Root() == j.s.root
				j.res.at, j.res.atXID, j.res.atPos = j.tree.Clone(), r.xid, r.pos
			}
		}
		j.index++
	}
	return nil
}

// compare notes the first leaf that differs from the stored tree's.
func (j *judge) compare(r *walkRow, computed [sha256.Size]byte, leaf tlog.Hash) error {
	want, pos, ok, err := j.stored.at(j.index)
	if err != nil {
		return err
	}
	if !ok {
		j.res.storedTreeShort = true
		return nil
	}
	if want != leaf {
		p := eventProblem(r, j.index, KindChanged, "")
		j.res.firstDiff = &leafDiff{leaf: j.index, event: &p, storedPos: pos, computed: computed}
	}
	return nil
}

func eventProblem(r *walkRow, index int64, kind, problem string) Problem {
	return Problem{Index: index, StreamID: string(r.f.streamID), Version: int(r.f.version),
		EventID: string(r.f.eventID), Position: r.pos, Kind: kind, Problem: problem}
}

// storedLeaves reads the leaves of the stored tree (log_tree), a batch
// row at a time, with the positions it stored for them: they say what
// the tree held where the recomputed one differs, never whether it does.
type storedLeaves struct {
	ctx                     context.Context
	t                       *Tree
	first, count, firstHash int64
	hashes                  []byte
	positions               []int64
}

// at is leaf i's hash and position, ok false when the stored tree does
// not hold it.
func (s *storedLeaves) at(i int64) (tlog.Hash, int64, bool, error) {
	if i < s.first || i >= s.first+s.count {
		var n int32
		err := s.t.pool.QueryRow(s.ctx, `SELECT first_leaf, leaves, first_hash, hashes, positions FROM log_tree
			WHERE first_leaf <= $1 ORDER BY first_leaf DESC LIMIT 1`, i).Scan(&s.first, &n, &s.firstHash, &s.hashes, &s.positions)
		if errors.Is(err, pgx.ErrNoRows) {
			return tlog.Hash{}, 0, false, nil
		}
		if err != nil {
			return tlog.Hash{}, 0, false, fmt.Errorf("read the stored tree: %w", err)
		}
		s.count = int64(n)
		if i >= s.first+s.count || int(s.count) != len(s.positions) {
			s.count = 0
			return tlog.Hash{}, 0, false, nil
		}
	}
	off := (tlog.StoredHashIndex(0, i) - s.firstHash) * tlog.HashSize
	if off < 0 || off+tlog.HashSize > int64(len(s.hashes)) {
		return tlog.Hash{}, 0, false, nil
	}
	return tlog.Hash(s.hashes[off : off+tlog.HashSize]), s.positions[i-s.first], true, nil
}

// catalogEnds notes each stream the stream catalog saw reach a version
// the log no longer holds: events removed from its end.
func catalogEnds(ctx context.Context, tx pgx.Tx, res *walkResult) error {
	rows, err := tx.Query(ctx, `SELECT stream_id, version FROM streams ORDER BY last_position`)
	if err != nil {
		return fmt.Errorf("check the stream catalog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v int32
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("check the stream catalog: %w", err)
		}
		var have int32
		if st := res.ends[id]; st != nil {
			have = st.version
		}
		if have < v {
			res.brokenLinks++
			if len(res.breaks) < maxProblems {
				res.breaks = append(res.breaks, Problem{Index: -1, StreamID: id, Version: int(v), Kind: KindTruncated,
					Problem: fmt.Sprintf("the stream ends at version %d but reached version %d: events were removed from its end", have, v)})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check the stream catalog: %w", err)
	}
	return nil
}
