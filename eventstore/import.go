package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arq-memory/arq/logproof"
)

// ErrNotVerified is what an import of a file that does not verify wraps
// (see ImportError); nothing of the file is imported.
var ErrNotVerified = errors.New("the exported log does not verify")

// ImportError names the first line of an exported log that does not
// verify, and what is wrong with it.
type ImportError struct {
	Line     int64
	EventID  string
	StreamID string
	Version  int
	Problem  string
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("line %d, event %s (stream %s, version %d): %s", e.Line, e.EventID, e.StreamID, e.Version, e.Problem)
}

// Unwrap makes every ImportError an ErrNotVerified.
func (e *ImportError) Unwrap() error { return ErrNotVerified }

// ImportOptions says how ReadNDJSON imports.
type ImportOptions struct {
	// Force imports into a log that holds events already.
	Force bool
	// LogKey, when not "", is the verifier key (a signed note's, see
	// logproof.OpenCheckpoint) of the exporting log's checkpoints: each
	// checkpoint the file carries must be signed by it, and the file must
	// carry one.
	LogKey string
	// Progress, if not nil, hears how many events were read, now and then.
	Progress func(n int64)
}

// ImportReport is what ReadNDJSON imported and checked.
type ImportReport struct {
	Events int64
	// Checkpoints is how many checkpoints the file carried, every one
	// matched by the file's events; Covered is the size of the largest.
	Checkpoints int
	Covered     int64
	// Signed says that their signatures were checked with the LogKey.
	Signed bool
}

// ReadNDJSON imports an exported log from r (see WriteNDJSON) into this
// one, in one transaction, and only if the whole file verifies; then the
// first bad line is an *ImportError and nothing is imported.
//
// The file's events are copied into a temporary table; each event's
// hash is computed there by arq_event_hash, the log's own definition
// (migrations/00011_hash_chain.sql), over the event as it will be stored,
// and must be the file's. In the file's order, each stream must go on
// from its version before (the log's head, or nothing) by one, chaining
// each hash to the one before it, and no event id may come twice or be
// in the log already. The events must be in the log's order (their
// exported transaction ids and positions grow), and each checkpoint the
// file carries must be the root of the tree of the file's events up to
// it (logproof.Leaves). Without Force it refuses a log that holds events
// (ErrNotEmpty).
func (s *Store) ReadNDJSON(ctx context.Context, r io.Reader, o ImportOptions) (ImportReport, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return ImportReport{}, fmt.Errorf("import: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var held bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&held); err != nil {
		return ImportReport{}, fmt.Errorf("look at the log: %w", err)
	}
	if held && !o.Force {
		return ImportReport{}, ErrNotEmpty
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE arq_import (
		line bigint NOT NULL, event_id text COLLATE "C" NOT NULL, stream_id text COLLATE "C" NOT NULL,
		stream_type text COLLATE "C" NOT NULL, version integer NOT NULL, event_type text COLLATE "C" NOT NULL,
		schema_version integer NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL,
		recorded_at timestamptz NOT NULL, hash bytea NOT NULL) ON COMMIT DROP`); err != nil {
		return ImportReport{}, fmt.Errorf("import: %w", err)
	}
	// The checks sort the file's events by stream, and the insert by line:
	// in memory, up to a point.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return ImportReport{}, fmt.Errorf("import: %w", err)
	}
	src := newFileEvents(r, o)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"arq_import"}, []string{"line", "event_id", "stream_id", "stream_type",
		"version", "event_type", "schema_version", "data", "metadata", "recorded_at", "hash"}, src); err != nil {
		if src.err != nil {
			return src.report, src.err
		}
		return src.report, fmt.Errorf("import: %w", err)
	}
	if src.err != nil { // a source's error fails the copy; this is in case it did not
		return src.report, src.err
	}
	if _, err := tx.Exec(ctx, `ANALYZE arq_import`); err != nil {
		return src.report, fmt.Errorf("import: %w", err)
	}
	bad, err := firstBadEvent(ctx, tx, held)
	if err != nil {
		return src.report, err
	}
	// A duplicate event id fails the insert below; when something else is
	// wrong already, one before it would be the first.
	if bad != nil || src.bad != nil {
		dup, err := firstDuplicate(ctx, tx, held)
		if err != nil {
			return src.report, err
		}
		bad = earliest(earliest(bad, src.bad), dup)
	}
	if bad == nil && o.LogKey != "" && src.report.Checkpoints == 0 {
		return src.report, fmt.Errorf("import refused, nothing imported: %w: the file carries no checkpoint to check with the log's key", ErrNotVerified)
	}
	if bad != nil {
		return src.report, fmt.Errorf("import refused, nothing imported: %w", bad)
	}
	if err := insertImported(ctx, tx, held); err != nil {
		return src.report, err
	}
	if err := tx.Commit(ctx); err != nil {
		return src.report, fmt.Errorf("import: %w", err)
	}
	s.onAppend()
	if o.Progress != nil {
		o.Progress(src.report.Events)
	}
	return src.report, nil
}

// insertImported appends the checked events of arq_import to the log, in
// the file's order; a duplicate event id, which the log's unique index
// refuses, is named as an *ImportError.
func insertImported(ctx context.Context, tx pgx.Tx, held bool) error {
	if _, err := tx.Exec(ctx, `SAVEPOINT arq_import`); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type,
			schema_version, data, metadata, recorded_at, hash)
		SELECT event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, hash
		FROM arq_import ORDER BY line`)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT arq_import`); rerr != nil {
			return fmt.Errorf("import: %w", rerr)
		}
		dup, derr := firstDuplicate(ctx, tx, held)
		if derr != nil {
			return derr
		}
		if dup != nil {
			return fmt.Errorf("import refused, nothing imported: %w", dup)
		}
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// firstBadEvent checks the events copied into arq_import, in the file's
// order, and returns the first that fails, or nil. held says the log
// holds events, which the file's streams must then go on from. A
// duplicate event id is left to the log's unique index, and then found
// by firstDuplicate.
func firstBadEvent(ctx context.Context, tx pgx.Tx, held bool) (*ImportError, error) {
	// The log's head of a stream is looked up only when it holds events.
	head := `SELECT NULL::integer AS version, NULL::bytea AS hash WHERE false`
	if held {
		head = `SELECT version, hash FROM events e WHERE e.stream_id = i.stream_id ORDER BY version DESC LIMIT 1`
	}
	// The chain is read from a narrow sort by stream (line, version and
	// hash), joined back to the events to hash them.
	var b ImportError
	var before int
	var first, versionOK bool
	q := `WITH f AS (
			SELECT line, lag(version) OVER s AS prev_version, lag(hash) OVER s AS prev_hash, lag(line) OVER s IS NULL AS first
			FROM arq_import WINDOW s AS (PARTITION BY stream_id ORDER BY line)
		), c AS (
			SELECT i.*, f.first,
				CASE WHEN f.first THEN coalesce(h.version, 0) ELSE f.prev_version END AS before,
				CASE WHEN f.first THEN h.hash ELSE f.prev_hash END AS chain
			FROM arq_import i JOIN f USING (line) LEFT JOIN LATERAL (` + head + `) h ON f.first
		)
		SELECT line, event_id, stream_id, version, before, first, version = before + 1
		FROM c WHERE version <> before + 1 OR hash IS DISTINCT FROM arq_event_hash(chain, event_id, stream_id,
			stream_type, version, event_type, schema_version, recorded_at, data, metadata)
		ORDER BY line LIMIT 1`
	err := tx.QueryRow(ctx, q).Scan(&b.Line, &b.EventID, &b.StreamID, &b.Version, &before, &first, &versionOK)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import: check the file's events: %w", err)
	}
	switch {
	case versionOK: // so the hash is wrong
		b.Problem = "its content does not match its hash, with its predecessor's: the event or its hash was changed"
	case b.Version <= before && first:
		b.Problem = fmt.Sprintf("a duplicate: the log holds its stream up to version %d already", before)
	case b.Version <= before:
		b.Problem = fmt.Sprintf("its version comes after version %d of its stream in the file: a duplicate, or events were moved", before)
	case b.Version == before+2:
		b.Problem = fmt.Sprintf("the chain is broken: version %d of its stream is missing before it", before+1)
	default:
		b.Problem = fmt.Sprintf("the chain is broken: versions %d to %d of its stream are missing before it", before+1, b.Version-1)
	}
	return &b, nil
}

// firstDuplicate is the first event of arq_import whose id an earlier line
// holds, or the log (when held), or nil.
func firstDuplicate(ctx context.Context, tx pgx.Tx, held bool) (*ImportError, error) {
	var b ImportError
	var earlier *int64
	err := tx.QueryRow(ctx, `SELECT line, event_id, stream_id, version, earlier FROM (
			SELECT line, event_id, stream_id, version, lag(line) OVER (PARTITION BY event_id ORDER BY line) AS earlier
			FROM arq_import) d
		WHERE earlier IS NOT NULL OR ($1 AND EXISTS (SELECT 1 FROM events e WHERE e.event_id = d.event_id))
		ORDER BY line LIMIT 1`, held).Scan(&b.Line, &b.EventID, &b.StreamID, &b.Version, &earlier)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import: look for duplicate events: %w", err)
	}
	b.Problem = "a duplicate: the log holds this event id already"
	if earlier != nil {
		b.Problem = fmt.Sprintf("a duplicate: line %d holds the same event id", *earlier)
	}
	return &b, nil
}

// fileEvents reads an exported log's lines as rows of arq_import, checking
// on the way what needs the file's order: the log's order, and the
// checkpoints. It stops at the first line that fails those (bad), or
// at a line that is not an exported event (err, which fails the import).
type fileEvents struct {
	sc       *bufio.Scanner
	o        ImportOptions
	line     int64
	row      []any
	err      error
	bad      *ImportError
	report   ImportReport
	last     Cursor
	leaves   logproof.Leaves
	origin   string
	coverEnd int64 // the line of the last checkpoint matched
}

func newFileEvents(r io.Reader, o ImportOptions) *fileEvents {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &fileEvents{sc: sc, o: o, report: ImportReport{Signed: o.LogKey != ""}}
}

// fileEvent is a line of an exported log (Exported), with its data and
// metadata as the file has them, so what is stored is what was hashed.
type fileEvent struct {
	Position      int64           `json:"position"`
	TransactionID uint64          `json:"transaction_id"`
	EventID       string          `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamType    string          `json:"stream_type"`
	Version       int             `json:"version"`
	Type          string          `json:"event_type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Hash          []byte          `json:"hash"`
	Checkpoint    string          `json:"checkpoint"`
}

func (f *fileEvents) Next() bool {
	for f.err == nil && f.bad == nil && f.sc.Scan() {
		f.line++
		if len(bytes.TrimSpace(f.sc.Bytes())) == 0 {
			continue
		}
		var e fileEvent
		if err := json.Unmarshal(f.sc.Bytes(), &e); err != nil {
			f.err = fmt.Errorf("import: line %d: not an exported event: %w", f.line, err)
			return false
		}
		if missing := e.missing(); missing != "" {
			f.err = fmt.Errorf("import: line %d: not an exported event: it has no %s", f.line, missing)
			return false
		}
		if f.check(e); f.bad != nil {
			return false
		}
		f.report.Events++
		if f.o.Progress != nil && f.report.Events%1000 == 0 {
			f.o.Progress(f.report.Events)
		}
		f.row = []any{f.line, e.EventID, e.StreamID, e.StreamType, e.Version, e.Type, e.SchemaVersion,
			[]byte(e.Data), []byte(e.Metadata), e.RecordedAt, e.Hash}
		return true
	}
	if f.err == nil && f.sc.Err() != nil {
		f.err = fmt.Errorf("import: read the exported log: %w", f.sc.Err())
	}
	return false
}

func (f *fileEvents) Values() ([]any, error) { return f.row, nil }

func (f *fileEvents) Err() error { return f.err }

// missing names a field an exported event cannot do without, if it lacks
// one.
func (e fileEvent) missing() string {
	switch {
	case e.EventID == "":
		return "event_id"
	case e.StreamID == "":
		return "stream_id"
	case e.StreamType == "":
		return "stream_type"
	case e.Type == "":
		return "event_type"
	case len(e.Data) == 0 || string(e.Data) == "null":
		return "data"
	case len(e.Metadata) == 0 || string(e.Metadata) == "null":
		return "metadata"
	case e.RecordedAt.IsZero():
		return "recorded_at"
	case len(e.Hash) == 0:
		return "hash"
	}
	return ""
}

// check adds e's leaf to the file's tree and checks its place in the
// log's order and the checkpoint it carries, if any; f.bad says what
// failed.
func (f *fileEvents) check(e fileEvent) {
	fail := func(format string, args ...any) {
		f.bad = &ImportError{Line: f.line, EventID: e.EventID, StreamID: e.StreamID, Version: e.Version, Problem: fmt.Sprintf(format, args...)}
	}
	at := Cursor{TransactionID: e.TransactionID, Position: e.Position}
	if f.leaves.Size() > 0 && at == f.last {
		fail("a duplicate: it has the same place in the log as the event above it (transaction %d, position %d)", e.TransactionID, e.Position)
		return
	}
	if f.leaves.Size() > 0 && !f.last.Less(at) {
		fail("it comes before the event above it in the log's order (transaction %d, position %d, after %d, %d): events were moved",
			e.TransactionID, e.Position, f.last.TransactionID, f.last.Position)
		return
	}
	f.last = at
	f.leaves.Add(logproof.LeafHash(e.Hash, e.Position))
	if e.Checkpoint == "" {
		return
	}
	var c logproof.Checkpoint
	var err error
	if f.o.LogKey != "" {
		c, err = logproof.OpenCheckpoint([]byte(e.Checkpoint), f.o.LogKey)
	} else {
		c, err = logproof.ReadCheckpoint([]byte(e.Checkpoint))
	}
	size := f.leaves.Size()
	switch {
	case err != nil:
		fail("the checkpoint it carries does not verify: %v", err)
	case f.origin != "" && c.Origin != f.origin:
		fail("it carries a checkpoint of another log (%s, not %s)", c.Origin, f.origin)
	case c.Size != size:
		fail("it carries the checkpoint of the log's first %d events but is the file's event %d: events were added or removed before it", c.Size, size)
	case c.Root != f.leaves.Root():
		fail("the checkpoint it carries, of the log's first %d events (%s, signed %s), does not match the file's events: one at lines %d to %d was changed, added, removed or moved",
			c.Size, c.Origin, c.Time.Format(time.RFC3339), f.coverEnd+1, f.line)
	default:
		f.origin, f.coverEnd = c.Origin, f.line
		f.report.Checkpoints++
		f.report.Covered = size
	}
}

// earliest is whichever of a and b names the earlier line (nil when both
// are).
func earliest(a, b *ImportError) *ImportError {
	if a == nil || (b != nil && b.Line < a.Line) {
		return b
	}
	return a
}
