package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// ErrRebuildRunning is returned when an online rebuild or verify of the
// same projection is already running, in this process or another.
var ErrRebuildRunning = errors.New("an online rebuild or verify of this projection is already running")

// scratchTables are tables that projections write beside their own and
// that a copy gets a private, throw-away version of: a copy being built
// must not bump the live cache generations (their rows would be locked by
// two projectors in different orders).
var scratchTables = []string{"cache_generations"}

// shadow is a copy of one projection's tables in a schema of its own,
// built from the log by a second consumer group while the live tables keep
// serving. Readers never see it: their search_path does not name it. The
// copy's connections put its schema first, so the projection's unqualified
// SQL writes the copy, and everything else (the log, checkpoints) resolves
// to the live schema.
type shadow struct {
	db     *pgxpool.Pool
	p      Projection
	log    *slog.Logger
	schema string // the copy's schema
	live   string // the live tables' schema
	group  string // the copy's consumer group
	lock   *pgxpool.Conn
	pool   *pgxpool.Pool // connections with the copy's search_path
	// deferred are the CREATE INDEX statements of the copy's GIN indexes,
	// dropped while the copy is filled (see deferGIN).
	deferred []string
	// analyzed is set once the filled copy's statistics are gathered.
	analyzed bool
	// opener opens the events the copy applies (see Config.Opener); nil
	// when they are applied as stored.
	opener eventstore.Opener
}

// openShadow takes the projection's rebuild lock (a session advisory lock,
// so a crashed process lets go of it), clears what an interrupted rebuild
// left, and creates empty copies of the projection's tables with the live
// tables' columns, constraints and index names.
func openShadow(ctx context.Context, db *pgxpool.Pool, p Projection, log *slog.Logger) (_ *shadow, err error) {
	s, err := openShadowLock(ctx, db, p, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()
	if err := s.lock.QueryRow(ctx, `SELECT current_schema()`).Scan(&s.live); err != nil {
		return nil, fmt.Errorf("copy of %s: read schema: %w", p.Name(), err)
	}
	if err := s.clear(ctx); err != nil {
		return nil, err
	}
	if err := pgx.BeginFunc(ctx, s.lock, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+s.ident(s.schema)); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		for _, t := range append(append([]string{}, p.Tables()...), scratchTables...) {
			if _, err := tx.Exec(ctx, `CREATE TABLE `+s.in(s.schema, t)+` (LIKE `+s.in(s.live, t)+` INCLUDING ALL)`); err != nil {
				return fmt.Errorf("copy table %s: %w", t, err)
			}
			if err := copyIndexNames(ctx, tx, s.live, s.schema, t); err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
		}
		return s.deferGIN(ctx, tx)
	}); err != nil {
		return nil, fmt.Errorf("copy of %s: %w", p.Name(), err)
	}
	var path string
	if err := s.lock.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&path); err != nil {
		return nil, fmt.Errorf("copy of %s: read search_path: %w", p.Name(), err)
	}
	cfg := db.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = s.ident(s.schema) + ", " + path
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.ConnConfig.RuntimeParams["application_name"] = "arq-copy-" + p.Name()
	cfg.MaxConns = 4
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("copy of %s: connect: %w", p.Name(), err)
	}
	return s, nil
}

// deferGIN drops the copy's GIN indexes (full text, tags, metadata) and
// keeps their definitions: a GIN index is cheaper built once over a full
// table than entry by entry, and no projection's writes read through one.
// B-tree indexes stay: unique ones back ON CONFLICT, and others serve the
// projections' deletes by user.
func (s *shadow) deferGIN(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT pg_get_indexdef(i.oid), i.relname
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam
		JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = $1 AND a.amname = 'gin' AND NOT x.indisunique
		ORDER BY i.relname`, s.schema)
	if err != nil {
		return fmt.Errorf("read GIN indexes: %w", err)
	}
	type index struct{ def, name string }
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		return i, r.Scan(&i.def, &i.name)
	})
	if err != nil {
		return fmt.Errorf("read GIN indexes: %w", err)
	}
	for _, i := range idx {
		if _, err := tx.Exec(ctx, `DROP INDEX `+s.in(s.schema, i.name)); err != nil {
			return fmt.Errorf("defer index %s: %w", i.name, err)
		}
		s.deferred = append(s.deferred, i.def)
	}
	return nil
}

// createDeferred builds the GIN indexes deferGIN dropped; the copy's
// projector is not running meanwhile.
func (s *shadow) createDeferred(ctx context.Context) error {
	for len(s.deferred) > 0 {
		if _, err := s.pool.Exec(ctx, s.deferred[0]); err != nil {
			return fmt.Errorf("copy of %s: build index: %w", s.p.Name(), err)
		}
		s.deferred = s.deferred[1:]
	}
	return nil
}

// openShadowLock takes p's rebuild lock (a session advisory lock, so a
// crashed process lets go of it) on a connection of its own.
func openShadowLock(ctx context.Context, db *pgxpool.Pool, p Projection, log *slog.Logger) (*shadow, error) {
	s := &shadow{db: db, p: p, log: log, schema: copySchema(p.Name()), group: copyGroup(p.Name())}
	if len(s.group) > 63 || len(s.schema) > 63 {
		return nil, fmt.Errorf("projection name %q is too long for a copy", p.Name())
	}
	var err error
	if s.lock, err = db.Acquire(ctx); err != nil {
		return nil, fmt.Errorf("copy of %s: acquire connection: %w", p.Name(), err)
	}
	var locked bool
	if err := s.lock.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, s.schema).Scan(&locked); err != nil {
		s.lock.Release()
		return nil, fmt.Errorf("copy of %s: take rebuild lock: %w", p.Name(), err)
	}
	if !locked {
		s.lock.Release()
		return nil, fmt.Errorf("projection %s: %w", p.Name(), ErrRebuildRunning)
	}
	return s, nil
}

// analyze gathers the planner's statistics of the copy's tables.
func (s *shadow) analyze(ctx context.Context) error {
	for _, t := range s.p.Tables() {
		if _, err := s.pool.Exec(ctx, `ANALYZE `+s.in(s.schema, t)); err != nil {
			return fmt.Errorf("copy of %s: analyze %s: %w", s.p.Name(), t, err)
		}
	}
	s.analyzed = true
	return nil
}

// copyIndexNames renames the copy's indexes (named by LIKE after their
// columns) to the names of the live indexes with the same definition, so
// that the tables swapped in carry the names migrations refer to.
func copyIndexNames(ctx context.Context, tx pgx.Tx, liveSchema, copySchema, table string) error {
	const defs = `SELECT i.relname, regexp_replace(pg_get_indexdef(i.oid), '^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+', 'CREATE \1INDEX ON')
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
		WHERE x.indrelid = $1::regclass ORDER BY i.relname`
	read := func(table string) (map[string][]string, []string, error) {
		rows, err := tx.Query(ctx, defs, table)
		if err != nil {
			return nil, nil, fmt.Errorf("read indexes of %s: %w", table, err)
		}
		defer rows.Close()
		byDef := map[string][]string{}
		var names []string
		for rows.Next() {
			var name, def string
			if err := rows.Scan(&name, &def); err != nil {
				return nil, nil, fmt.Errorf("read indexes of %s: %w", table, err)
			}
			byDef[def] = append(byDef[def], name)
			names = append(names, name)
		}
		return byDef, names, rows.Err()
	}
	want, _, err := read(pgx.Identifier{liveSchema, table}.Sanitize())
	if err != nil {
		return err
	}
	have, names, err := read(pgx.Identifier{copySchema, table}.Sanitize())
	if err != nil {
		return err
	}
	schema := pgx.Identifier{copySchema}
	// Two passes, through temporary names, so that no rename collides
	// with a name another index of the copy still holds.
	tmp := map[string]string{}
	for i, n := range names {
		tmp[n] = fmt.Sprintf("arq_index_%d", i)
		if _, err := tx.Exec(ctx, `ALTER INDEX `+schema.Sanitize()+`.`+pgx.Identifier{n}.Sanitize()+` RENAME TO `+pgx.Identifier{tmp[n]}.Sanitize()); err != nil {
			return fmt.Errorf("rename index %s: %w", n, err)
		}
	}
	for def, ns := range have {
		for i, n := range ns {
			if i >= len(want[def]) {
				return fmt.Errorf("copied index %s has no live counterpart", n)
			}
			if _, err := tx.Exec(ctx, `ALTER INDEX `+schema.Sanitize()+`.`+pgx.Identifier{tmp[n]}.Sanitize()+` RENAME TO `+pgx.Identifier{want[def][i]}.Sanitize()); err != nil {
				return fmt.Errorf("rename index %s: %w", n, err)
			}
		}
	}
	return nil
}

func (s *shadow) ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func (s *shadow) in(schema, table string) string { return pgx.Identifier{schema, table}.Sanitize() }

// clear drops the copy's schema and forgets its consumer group.
func (s *shadow) clear(ctx context.Context) error {
	if _, err := s.lock.Exec(ctx, `DROP SCHEMA IF EXISTS `+s.ident(s.schema)+` CASCADE`); err != nil {
		return fmt.Errorf("copy of %s: drop schema: %w", s.p.Name(), err)
	}
	if _, err := s.lock.Exec(ctx, `DELETE FROM `+checkpointTable+` WHERE consumer_group = $1`, s.group); err != nil {
		return fmt.Errorf("copy of %s: drop checkpoint: %w", s.p.Name(), err)
	}
	if _, err := s.lock.Exec(ctx, `DELETE FROM projection_status WHERE name = $1`, s.group); err != nil {
		return fmt.Errorf("copy of %s: drop status: %w", s.p.Name(), err)
	}
	return nil
}

// close drops what is left of the copy and lets go of the rebuild lock.
func (s *shadow) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.pool != nil {
		s.pool.Close()
	}
	if err := s.clear(ctx); err != nil {
		s.log.Warn("drop projection copy", "err", err)
	}
	if _, err := s.lock.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, s.schema); err != nil {
		s.lock.Conn().Close(ctx) // closing the session lets go of the lock
	}
	s.lock.Release()
}

// copyProjection is the projection under the copy's consumer group.
type copyProjection struct {
	Projection
	group string
}

func (c copyProjection) Name() string { return c.group }

// catchUp applies to the copy, in a transaction of its own, the events
// the live projection has applied and the copy has not, and moves the
// copy's checkpoint with them. The copy's projector must be stopped.
func (s *shadow) catchUp(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		live, err := checkpointOf(ctx, tx, s.p.Name(), false)
		if err != nil {
			return err
		}
		at, err := checkpointOf(ctx, tx, s.group, true)
		if err != nil {
			return err
		}
		if !at.Less(live) {
			return nil
		}
		if _, err := s.applyGap(ctx, tx, at, live); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+checkpointTable+` (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, $2, $3) ON CONFLICT (consumer_group) DO UPDATE
			SET offset_acked = EXCLUDED.offset_acked, last_processed_transaction_id = EXCLUDED.last_processed_transaction_id`,
			s.group, live.Position, live.TransactionID); err != nil {
			return fmt.Errorf("move the copy's checkpoint: %w", err)
		}
		return nil
	})
}

// applyGap applies the events after from up to and including to, inside
// tx, to the copy (tx runs on the copy's connections).
func (s *shadow) applyGap(ctx context.Context, tx pgx.Tx, from, to eventstore.Cursor) (int, error) {
	rows, err := tx.Query(ctx, `SELECT `+eventstore.Columns+` FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
		  AND (transaction_id, position) <= ($3::xid8, $4::bigint)
		ORDER BY transaction_id, position`,
		from.TransactionID, from.Position, to.TransactionID, to.Position)
	if err != nil {
		return 0, fmt.Errorf("read events to catch up: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventstore.Recorded, error) { return eventstore.ScanRecorded(r) })
	if err != nil {
		return 0, fmt.Errorf("read events to catch up: %w", err)
	}
	if err := s.open(ctx, events); err != nil {
		return 0, fmt.Errorf("open events to catch up: %w", err)
	}
	// One Tx for all: the writes of every event go in one round trip
	// (a projection that reads sends the writes before it first).
	dt := &directTx{tx: tx}
	for _, e := range events {
		if err := s.p.Apply(ctx, dt, e); err != nil {
			return 0, fmt.Errorf("apply event %s to the copy: %w", e.EventID, err)
		}
	}
	if err := dt.flush(ctx); err != nil {
		return 0, fmt.Errorf("apply %d events to the copy: %w", len(events), err)
	}
	return len(events), nil
}

// openChunk is how many events one call of the copy's opener opens.
const openChunk = 1000

// open opens, in place, the events the copy's projection applies, a chunk
// of them a call.
func (s *shadow) open(ctx context.Context, events []eventstore.Recorded) error {
	if s.opener == nil {
		return nil
	}
	types := eventTypes(s.p)
	var chunk []eventstore.Recorded
	var at []int
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := s.opener.Open(ctx, chunk); err != nil {
			return err
		}
		for i, j := range at {
			events[j] = chunk[i]
		}
		chunk, at = chunk[:0], at[:0]
		return nil
	}
	for i, e := range events {
		if types != nil && !slices.Contains(types, e.Type) {
			continue // Apply ignores it
		}
		chunk, at = append(chunk, e), append(at, i)
		if len(chunk) == openChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// directTx is the Tx of an event applied outside the engine, straight in a
// transaction of the caller's.
type directTx struct {
	tx        pgx.Tx
	batch     pgx.Batch
	coalesced coalescers
}

func (t *directTx) Exec(sql string, args ...any) {
	t.coalesced.flush(&t.batch)
	t.batch.Queue(sql, args...)
}

func (t *directTx) Coalesce(key string, create func() Coalescer) Coalescer {
	return t.coalesced.get(key, create)
}

func (t *directTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

func (t *directTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

func (t *directTx) flush(ctx context.Context) error {
	t.coalesced.flush(&t.batch)
	if t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = pgx.Batch{}
	if err := t.tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// DropAbandonedCopies drops the copies of ps that no process is building
// (their rebuild lock is free): what an online rebuild or verify that
// crashed left, a full-size copy of the projection's tables. Servers call
// it at start.
func DropAbandonedCopies(ctx context.Context, db *pgxpool.Pool, ps []Projection, log *slog.Logger) error {
	byName := make(map[string]Projection, len(ps))
	names := make([]string, len(ps))
	for i, p := range ps {
		byName[p.Name()], names[i] = p, p.Name()
	}
	copies, err := Copies(ctx, db, names)
	if err != nil {
		return err
	}
	for _, c := range copies {
		if c.Building {
			continue
		}
		s, err := openShadowLock(ctx, db, byName[c.Projection], log)
		if errors.Is(err, ErrRebuildRunning) {
			continue // a rebuild took it since
		}
		if err != nil {
			return err
		}
		log.Warn("dropping the copy an interrupted online rebuild left", "projection", c.Projection, "schema", c.Schema)
		s.close(ctx)
	}
	return nil
}

// copySchema is the schema of a copy of projection name's tables, and
// copyGroup the consumer group (and checkpoint) of its projector.
func copySchema(name string) string { return "arq_copy_" + name }
func copyGroup(name string) string  { return name + "_copy" }

// CopyState is what operators see of a copy of a projection's tables.
type CopyState struct {
	Projection string `json:"projection"`
	Schema     string `json:"schema"`
	// Building is true while a process holds the copy's rebuild lock;
	// false means a crashed rebuild left it (the next rebuild of the
	// projection, or the next server start, drops it).
	Building bool  `json:"building"`
	Position int64 `json:"position"`
}

// rebuildLockHeld tells whether any session holds the rebuild lock of the
// copy schema $1 (see openShadowLock), by looking at pg_locks, which shows
// a bigint advisory key as its high and low 32 bits (classid, objid) with
// objsubid 1. Trying the lock for a moment instead would make a rebuild
// that starts in that moment fail as if another one ran.
const rebuildLockHeld = `SELECT EXISTS (SELECT 1 FROM pg_locks l, (SELECT hashtextextended($1, 0) AS k) x
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid = ((x.k >> 32) & 4294967295)::text::oid AND l.objid = (x.k & 4294967295)::text::oid)`

// Copies lists the copies of the named projections that exist now.
func Copies(ctx context.Context, db *pgxpool.Pool, names []string) ([]CopyState, error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("list projection copies: %w", err)
	}
	defer conn.Release()
	var out []CopyState
	for _, name := range names {
		c := CopyState{Projection: name, Schema: copySchema(name)}
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, c.Schema).Scan(&exists); err != nil {
			return nil, fmt.Errorf("list projection copies: %w", err)
		}
		if !exists {
			continue
		}
		if err := conn.QueryRow(ctx, rebuildLockHeld, c.Schema).Scan(&c.Building); err != nil {
			return nil, fmt.Errorf("list projection copies: %w", err)
		}
		at, err := checkpointOf(ctx, conn, copyGroup(name), false)
		if err != nil {
			return nil, err
		}
		c.Position = at.Position
		out = append(out, c)
	}
	return out, nil
}
