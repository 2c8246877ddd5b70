package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// How a copy catches up and switches in.
const (
	// copyCatchUp is how many log positions the copy may still lag the
	// live projection when its projector stops following; the rest is
	// applied in a transaction of its own before the switch or the
	// comparison.
	copyCatchUp = 1000
	// switchLockTimeout bounds how long the switch waits for readers of
	// the live tables; past it the switch lets go (readers queue behind a
	// waiting lock) and is tried again after catching up anew. (The wait
	// for the live projector's batch is bounded at 10 s.)
	switchLockTimeout = 500 * time.Millisecond
	// switchAttempts is how often the switch is tried.
	switchAttempts = 20
)

// OnlineOptions tune a Copy; zero values take the defaults.
type OnlineOptions struct {
	// UpToLog builds the copy up to the last event of the log, whatever
	// the live checkpoint, and the switch moves the live checkpoint up to
	// the copy's (or applies what the copy lacks, if a live projector got
	// further meanwhile): a rebuild of a projection no projector keeps
	// current, as after an import, or of all at once. It is for Replace;
	// Compare needs the copy at the live checkpoint.
	UpToLog bool
	// Progress, if set, hears the copy's position and the position it
	// is heading for, a few times a second.
	Progress func(position, target int64)
	Log      *slog.Logger
	// Opener opens the events the copy applies (see Config.Opener); nil
	// applies them as the log stores them.
	Opener eventstore.Opener
}

func (o *OnlineOptions) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Copy is a new copy of one projection's tables, built from the log while
// the live tables keep serving and the live projector keeps them current.
// Replace swaps it in; Compare reports how it differs from the live
// tables. Either ends the copy; Close ends it unused.
type Copy struct {
	s        *shadow
	notifier *eventstore.Notifier
	o        OnlineOptions
}

// NewCopy takes p's rebuild lock and creates the copy's empty tables. It
// fails with ErrRebuildRunning when another copy of p exists.
func NewCopy(ctx context.Context, db *pgxpool.Pool, notifier *eventstore.Notifier, p Projection, o OnlineOptions) (*Copy, error) {
	o.defaults()
	s, err := openShadow(ctx, db, p, o.Log)
	if err != nil {
		return nil, err
	}
	if opens(p) {
		s.opener = o.Opener
	}
	return &Copy{s: s, notifier: notifier, o: o}, nil
}

// Close drops the copy and lets go of the rebuild lock.
func (c *Copy) Close() {
	if c.s != nil {
		c.s.close(context.Background())
		c.s = nil
	}
}

// Replace builds the copy up to the live projection and swaps it in: in
// one transaction, holding the live checkpoint, it applies the events the
// copy still lacks, drops the live tables and moves the copy's into their
// place. Readers see the old tables until that commits and the new ones
// after, never a half-built table; the live projector resumes after the
// last event both hold, so none is missed. It returns that event.
func (c *Copy) Replace(ctx context.Context) (eventstore.Cursor, error) {
	defer c.Close()
	for attempt := 1; ; attempt++ {
		if err := c.build(ctx); err != nil {
			return eventstore.Start, err
		}
		// What the copy still lacks is applied in a transaction of its
		// own first, so that the switch itself has only the events of
		// the last moments to apply while it holds the live projection.
		if err := c.s.catchUp(ctx); err != nil {
			return eventstore.Start, err
		}
		at, gap, err := c.swap(ctx)
		if err == nil {
			mode := "online"
			if c.o.UpToLog {
				mode = "to the end of the log"
			}
			c.o.Log.Info("projection rebuilt", "projection", c.s.p.Name(), "mode", mode, "checkpoint", at.String(), "caught_up_in_switch", gap)
			return at, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01") && attempt < switchAttempts {
			c.o.Log.Warn("switching in the rebuilt projection waited too long for the live tables; trying again",
				"projection", c.s.p.Name(), "attempt", attempt, "err", err)
			select {
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			case <-ctx.Done():
				return eventstore.Start, ctx.Err()
			}
			continue
		}
		return eventstore.Start, fmt.Errorf("switch in the copy of %s: %w", c.s.p.Name(), err)
	}
}

// build brings the copy up to the live projection, with the copy's
// projector stopped. The first stretch, the bulk of the log, runs up to
// the live checkpoint as it was at the start and without the copy's GIN
// indexes, which are built next (see deferGIN), and the copy's tables are
// analyzed.
// Then the copy follows the live checkpoint, its bound moved as the live
// projection moves, until it lags by at most copyCatchUp positions: the rest
// is applied in the switch.
func (c *Copy) build(ctx context.Context) error {
	s := c.s
	if !s.analyzed {
		if err := c.follow(ctx, true); err != nil {
			return err
		}
		if err := s.createDeferred(ctx); err != nil {
			return err
		}
		// Fresh tables have no statistics until autovacuum comes by; the
		// planner would meet the switched-in tables blind.
		if err := s.analyze(ctx); err != nil {
			return err
		}
	}
	// Up to the log, the copy cannot stop short of its bound: no live
	// projector would apply the rest.
	if err := c.follow(ctx, c.o.UpToLog); err != nil {
		return err
	}
	return nil
}

// follow runs the copy's projector, bounded by the live checkpoint, until
// the copy has reached the bound (fixed: the live checkpoint when follow
// began) or lags the moving live checkpoint by at most copyCatchUp positions.
// Under writes faster than it can close the gap to CatchUp, it settles for
// 20 × copyCatchUp after 30 s, and for any gap after 2 minutes (the caller then
// applies the gap in one transaction, holding the projectors meanwhile).
func (c *Copy) follow(ctx context.Context, fixed bool) error {
	s := c.s
	first, err := c.target(ctx)
	if err != nil {
		return err
	}
	var bound atomic.Pointer[eventstore.Cursor]
	bound.Store(&first)
	cfg := Config{Opener: s.opener}
	cfg.Until = func() eventstore.Cursor { return *bound.Load() }
	engine, err := NewEngine(s.pool, c.notifier, []Projection{copyProjection{s.p, s.group}}, cfg, s.log.With("copy_of", s.p.Name()))
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	running := false
	stop := func() error {
		if !running {
			return nil
		}
		cancel()
		return <-done
	}
	began := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		target := *bound.Load()
		if !fixed {
			if target, err = c.target(ctx); err != nil {
				_ = stop()
				return err
			}
			bound.Store(&target)
		}
		st, err := States(ctx, s.db, []string{s.group})
		if err != nil {
			_ = stop()
			return err
		}
		if st[0].State == StateStopped {
			_ = stop()
			return fmt.Errorf("copy of %s stopped at event %s (position %d): %s",
				s.p.Name(), st[0].FailedEventID, st[0].FailedPosition, st[0].LastError)
		}
		at := st[0].Checkpoint
		if c.o.Progress != nil {
			c.o.Progress(at.Position, target.Position)
		}
		gap := target.Position - at.Position
		switch {
		case !at.Less(target),
			!fixed && gap <= copyCatchUp,
			!fixed && gap <= 20*copyCatchUp && time.Since(began) > 30*time.Second,
			!fixed && time.Since(began) > 2*time.Minute:
			if err := stop(); err != nil {
				return fmt.Errorf("copy of %s: %w", s.p.Name(), err)
			}
			return nil
		}
		if !running {
			running = true
			go func() { done <- engine.Run(runCtx) }()
		}
		select {
		case err := <-done:
			running = false
			if err == nil {
				err = errors.New("its projector ended")
			}
			return fmt.Errorf("copy of %s: %w", s.p.Name(), err)
		case <-ctx.Done():
			_ = stop()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// target is where the copy is heading: the live checkpoint, or with
// UpToLog the last committed event (also one an older open transaction
// still hides, which the projector waits for).
func (c *Copy) target(ctx context.Context) (eventstore.Cursor, error) {
	if !c.o.UpToLog {
		return checkpointOf(ctx, c.s.db, c.s.p.Name(), false)
	}
	return eventstore.New(c.s.db).Last(ctx)
}

// swap is Replace's transaction; it returns the checkpoint both copies
// share after it and how many events it applied to the copy.
func (c *Copy) swap(ctx context.Context) (at eventstore.Cursor, gap int, err error) {
	s := c.s
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The copy's pool writes without waiting for the WAL flush; the
		// switch, once reported done, must survive a crash.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'; SET LOCAL synchronous_commit = on`); err != nil {
			return fmt.Errorf("set lock timeout: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+checkpointTable+` (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, s.p.Name()); err != nil {
			return fmt.Errorf("create live checkpoint: %w", err)
		}
		// Locking the live checkpoint waits for the live projector's
		// batch in flight and keeps its next one out until the switch
		// commits; that one then fails on the changed row and is read
		// again, in a snapshot that sees the new tables whole. (This gives
		// the switch a transaction id, which holds every projector of the
		// cluster below it: the switch is kept short.)
		live, err := checkpointOf(ctx, tx, s.p.Name(), true)
		if err != nil {
			return err
		}
		at, err = checkpointOf(ctx, tx, s.group, true)
		if err != nil {
			return err
		}
		if at.Less(live) {
			if gap, err = s.applyGap(ctx, tx, at, live); err != nil {
				return err
			}
			at = live
		}
		// Readers queue behind a waiting ACCESS EXCLUSIVE lock: wait for
		// the live tables' readers briefly, then let go and try again.
		if len(s.p.Tables()) > 0 {
			tables := make([]string, len(s.p.Tables()))
			for i, t := range s.p.Tables() {
				tables[i] = s.in(s.live, t)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, switchLockTimeout.Milliseconds())); err != nil {
				return fmt.Errorf("set lock timeout: %w", err)
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("lock live tables: %w", err)
			}
		}
		for _, t := range s.p.Tables() {
			if _, err := tx.Exec(ctx, `DROP TABLE `+s.in(s.live, t)); err != nil {
				return fmt.Errorf("drop live table %s: %w", t, err)
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE `+s.in(s.schema, t)+` SET SCHEMA `+s.ident(s.live)); err != nil {
				return fmt.Errorf("move rebuilt table %s in: %w", t, err)
			}
		}
		// Cached windows made from the old rows must go: every cached
		// window names the 'rebuilds' generation (see
		// migrations/00008_cache_generations.sql), and a rebuild exists to
		// change rows, also rows no replayed event names;
		// the live schema's generations, not the copy's scratch ones.
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.in(s.live, "cache_generations")+` AS g (key, gen) VALUES ('rebuilds', 1)
			ON CONFLICT (key) DO UPDATE SET gen = g.gen + 1`); err != nil {
			return fmt.Errorf("bump cache generations: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE `+checkpointTable+` SET offset_acked = $2, last_processed_transaction_id = $3
			WHERE consumer_group = $1`, s.p.Name(), at.Position, at.TransactionID); err != nil {
			return fmt.Errorf("move live checkpoint: %w", err)
		}
		if c.o.UpToLog {
			// Rebuilt from the whole log: an error the live projection
			// stopped on is behind it (a rebuild that met it again would
			// have failed).
			if err := setRunning(ctx, tx, s.p.Name()); err != nil {
				return err
			}
		}
		return nil
	})
	return at, gap, err
}

// TableDiff is how one table of a projection differs from a fresh
// rebuild. Rows are shown as Postgres renders them (row literals).
type TableDiff struct {
	Table string `json:"table"`
	// OnlyLive counts rows the live table has and a rebuild does not
	// (wrong or stale rows); OnlyRebuilt the reverse (missing rows).
	OnlyLive    int64 `json:"only_live"`
	OnlyRebuilt int64 `json:"only_rebuilt"`
	// Examples of each, at most Limit, in row order.
	LiveRows    []string `json:"live_rows,omitempty"`
	RebuiltRows []string `json:"rebuilt_rows,omitempty"`
}

// Report is what Compare found.
type Report struct {
	Projection string `json:"projection"`
	// Checkpoint is the event both sides had applied when compared.
	Checkpoint string      `json:"checkpoint"`
	Tables     []TableDiff `json:"tables"`
}

// Clean reports whether no row differs.
func (r Report) Clean() bool {
	for _, t := range r.Tables {
		if t.OnlyLive > 0 || t.OnlyRebuilt > 0 {
			return false
		}
	}
	return true
}

// Compare builds the copy up to the live projection and reports every row
// that differs between them, as of one live checkpoint: a repeatable-read
// transaction sees the live tables and their checkpoint together (they
// commit together), and the events the copy still lacks are applied to it
// inside that transaction. The live projector is not held back. limit
// bounds the rows shown per table and side; counts are complete.
func (c *Copy) Compare(ctx context.Context, limit int) (Report, error) {
	defer c.Close()
	s := c.s
	if err := c.build(ctx); err != nil {
		return Report{Projection: s.p.Name()}, err
	}
	// The diff runs in a read-only snapshot, which holds no projector
	// back, at a moment when the copy's checkpoint equals the live one:
	// bring the copy there in a transaction of its own, then look. Under
	// writes that never leave such a moment, the last attempt applies the
	// gap inside the snapshot, holding the projectors for the diff.
	const attempts = 20
	for attempt := 1; ; attempt++ {
		if err := s.catchUp(ctx); err != nil {
			return Report{Projection: s.p.Name()}, err
		}
		last := attempt == attempts
		if last {
			s.log.Warn("the live projection kept moving; comparing with it held", "projection", s.p.Name())
		}
		rep, same, err := c.compareAt(ctx, limit, last)
		if err != nil {
			return rep, fmt.Errorf("compare %s with a rebuild: %w", s.p.Name(), err)
		}
		if same {
			return rep, nil
		}
		select { // a quiet moment of the live projection is more likely soon
		case <-time.After(time.Duration(attempt) * 25 * time.Millisecond):
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
}

// compareAt diffs the copy and the live tables in one repeatable-read
// snapshot if there both stand at the same checkpoint (same is false
// otherwise), or, with force, after applying the copy's gap in it.
func (c *Copy) compareAt(ctx context.Context, limit int, force bool) (rep Report, same bool, err error) {
	s := c.s
	rep = Report{Projection: s.p.Name()}
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if force {
		opts.AccessMode = pgx.ReadWrite
	}
	err = pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		live, err := checkpointOf(ctx, tx, s.p.Name(), false)
		if err != nil {
			return err
		}
		at, err := checkpointOf(ctx, tx, s.group, false)
		if err != nil {
			return err
		}
		if live.Less(at) {
			return fmt.Errorf("the live projection %s moved back from %s to %s while it was compared", s.p.Name(), at, live)
		}
		if at != live && !force {
			return tx.Rollback(ctx)
		}
		if _, err := s.applyGap(ctx, tx, at, live); err != nil {
			return err
		}
		same = true
		rep.Checkpoint = live.String()
		for _, t := range s.p.Tables() {
			d, err := s.diff(ctx, tx, t, limit)
			if err != nil {
				return err
			}
			rep.Tables = append(rep.Tables, d)
		}
		return tx.Rollback(ctx) // the copy is dropped anyway
	})
	if errors.Is(err, pgx.ErrTxClosed) {
		err = nil
	}
	return rep, same, err
}

// diff compares one table with its copy, row by row as text: every
// column type has a text form, not all have equality (json).
func (s *shadow) diff(ctx context.Context, tx pgx.Tx, table string, limit int) (TableDiff, error) {
	d := TableDiff{Table: table}
	side := func(a, b string, n *int64, rows *[]string) error {
		q := `WITH d AS (SELECT r::text AS row FROM ` + a + ` r EXCEPT ALL SELECT r::text FROM ` + b + ` r)
			SELECT row, count(*) OVER () FROM d ORDER BY row LIMIT $1`
		rs, err := tx.Query(ctx, q, max(limit, 1))
		if err != nil {
			return fmt.Errorf("compare table %s: %w", table, err)
		}
		defer rs.Close()
		for rs.Next() {
			var row string
			if err := rs.Scan(&row, n); err != nil {
				return fmt.Errorf("compare table %s: %w", table, err)
			}
			if len(*rows) < limit {
				*rows = append(*rows, row)
			}
		}
		return rs.Err()
	}
	if err := side(s.in(s.live, table), s.in(s.schema, table), &d.OnlyLive, &d.LiveRows); err != nil {
		return d, err
	}
	if err := side(s.in(s.schema, table), s.in(s.live, table), &d.OnlyRebuilt, &d.RebuiltRows); err != nil {
		return d, err
	}
	return d, nil
}

// queryRower is a pool or a transaction.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// checkpointOf reads a consumer group's checkpoint (Start for one that has
// applied nothing), locking its row if asked (inside a transaction).
func checkpointOf(ctx context.Context, tx queryRower, group string, lock bool) (eventstore.Cursor, error) {
	q := `SELECT last_processed_transaction_id, offset_acked FROM ` + checkpointTable + ` WHERE consumer_group = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	var c eventstore.Cursor
	var pos *int64
	err := tx.QueryRow(ctx, q, group).Scan(&c.TransactionID, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return c, fmt.Errorf("read checkpoint of %s: %w", group, err)
	}
	if pos != nil {
		c.Position = *pos
	}
	return c, nil
}
