package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/batch"
)

// Reader reads the query tables.
type Reader struct {
	db           querier
	pool         *pgxpool.Pool
	windowStates *batch.Loader[string, WindowState]
	stamps       *batch.Loader[entityKey, string]
	messages     *batch.Loader[string, Message]
	// opener opens the events a Reader reads from the log itself (see
	// WindowAt); nil reads them as stored.
	opener eventstore.Opener
	// vectors keeps users' embeddings in memory; nil reads them from
	// the table each time (see nearestAmong).
	vectors *VectorCache
}

// ReaderOption sets up a Reader.
type ReaderOption func(*Reader)

// OpenEventsWith has the Reader open the events it reads from the log
// itself with o, putting back the personal fields the log keeps sealed
// (see eventstore.Sealer). What it reads so is handed to clients: o
// must read the data keys afresh (the event store's Open), not ones a
// process remembers, or an erasure elsewhere could be missed.
func OpenEventsWith(o eventstore.Opener) ReaderOption {
	return func(r *Reader) { r.opener = o }
}

// CacheVectorsIn has the Reader keep users' embeddings in c (nil: none)
// for searches and context windows with an embedding.
func CacheVectorsIn(c *VectorCache) ReaderOption {
	return func(r *Reader) { r.vectors = c }
}

// NewReader returns a Reader over pool's database.
func NewReader(db *pgxpool.Pool, opts ...ReaderOption) *Reader {
	r := &Reader{db: db, pool: db}
	for _, o := range opts {
		o(r)
	}
	r.windowStates = batch.NewLoader(r.readWindowStates, readBatches, readBatchTimeout)
	r.stamps = batch.NewLoader(r.readStamps, readBatches, readBatchTimeout)
	r.messages = batch.NewLoader(r.readMessages, readBatches, readBatchTimeout)
	return r
}

// querier is what the Reader reads through: the pool, or one read-only
// transaction whose snapshot several reads share (see WindowAt).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// How many batches of each kind of batched read run at once, and how long
// one may take.
const (
	readBatches      = 2
	readBatchTimeout = 10 * time.Second
)

// loadOne reads key through l; what and id name it in errors. An id that
// Postgres cannot hold names nothing and is not asked for: in a batch it
// would fail the others' reads (batch.Loader would then read each alone).
func loadOne[K comparable, V any](ctx context.Context, l *batch.Loader[K, V], key K, what, id string) (V, error) {
	var zero V
	if !Storable(id) {
		return zero, notFound(pgx.ErrNoRows, what, id)
	}
	v, ok, err := l.Load(ctx, key)
	if err != nil {
		return zero, fmt.Errorf("read %s %s: %w", what, id, err)
	}
	if !ok {
		return zero, notFound(pgx.ErrNoRows, what, id)
	}
	return v, nil
}

// keyCond is the condition that col is one of keys: "= $1" with the key
// for a lone one, as an array of one costs a lone read about twice the
// time in Postgres; "= ANY($1)" with the array for several.
func keyCond(col string, keys []string) (string, any) {
	if len(keys) == 1 {
		return col + ` = $1`, keys[0]
	}
	return col + ` = ANY($1)`, keys
}

const userCols = `id, external_id, name, email, metadata, version, created_at, updated_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.ExternalID, &u.Name, &u.Email, &u.Metadata, &u.Version, &u.CreatedAt, &u.UpdatedAt)
	return u, err
}

// GetUser reads one user of a tenant.
func (r *Reader) GetUser(ctx context.Context, tenant, id string) (User, error) {
	u, err := scanUser(r.db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant = $1 AND id = $2`, tenant, id))
	return u, notFound(err, "user", id)
}

// ListUsers lists a tenant's users in registration order; with an
// externalID, only the user who holds it (at most one).
func (r *Reader) ListUsers(ctx context.Context, tenant, externalID string, p Page) ([]User, string, error) {
	list := "users:" + tenant
	limit, after, err := bounds(p, list)
	if err != nil {
		return nil, "", err
	}
	q, args := `SELECT `+userCols+` FROM users WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3`, []any{tenant, after, limit + 1}
	if externalID != "" {
		q = `SELECT ` + userCols + ` FROM users WHERE tenant = $1 AND external_id = $4 AND id > $2 ORDER BY id LIMIT $3`
		args = append(args, externalID)
	}
	rows, err := r.db.Query(ctx, q, args...)
	return collect(rows, err, scanUser, limit, list, func(u User) string { return u.ID })
}

// sessionStatus is a session's status as of now: an open session past its
// expiry time is expired, before its expired event is projected.
const sessionStatus = `CASE WHEN status = 'open' AND expires_at <= now() THEN 'expired' ELSE status END`

const sessionCols = `id, user_id, title, metadata, ` + sessionStatus + `,
	expires_at, ` + sessionMessageCount + `, version, created_at, updated_at, closed_at`

// sessionMessageCount is the number of messages a session (a row of
// sessions) holds, counted by the messages projection.
const sessionMessageCount = `coalesce((SELECT b.message_count FROM session_backlog b WHERE b.session_id = sessions.id), 0)`

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.ID, &s.UserID, &s.Title, &s.Metadata, &s.Status, &s.ExpiresAt, &s.MessageCount, &s.Version, &s.CreatedAt, &s.UpdatedAt, &s.ClosedAt)
	return s, err
}

// GetSession reads one session.
func (r *Reader) GetSession(ctx context.Context, id string) (Session, error) {
	s, err := scanSession(r.db.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	return s, notFound(err, "session", id)
}

// SessionByTokenHash reads the session a token (by its hash) opens.
func (r *Reader) SessionByTokenHash(ctx context.Context, hash string) (Session, error) {
	s, err := scanSession(r.db.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, hash))
	return s, notFound(err, "session", "with that token")
}

// ListSessions lists a user's sessions, newest first.
func (r *Reader) ListSessions(ctx context.Context, userID string, p Page) ([]Session, string, error) {
	list := "sessions:" + userID
	limit, after, err := bounds(p, list)
	if err != nil {
		return nil, "", err
	}
	rows, err := r.db.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3`, userID, after, limit+1)
	return collect(rows, err, scanSession, limit, list, func(s Session) string { return s.ID })
}

const messageCols = `id, session_id, user_id, seq, role, content, name, metadata, tokens, embedding_dim, version, created_at, updated_at`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.SessionID, &m.UserID, &m.Seq, &m.Role, &m.Content, &m.Name, &m.Metadata, &m.Tokens, &m.EmbeddingDim, &m.Version, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// GetMessage reads one message. Reads of messages by id that arrive
// together (a command's read-back of the message it appended, above all)
// share one query, sent after each of them arrived (see batch.Loader).
func (r *Reader) GetMessage(ctx context.Context, id string) (Message, error) {
	return loadOne(ctx, r.messages, id, "message", id)
}

// readMessages reads the messages of ids that exist.
func (r *Reader) readMessages(ctx context.Context, ids []string) (map[string]Message, error) {
	cond, arg := keyCond("id", ids)
	rows, err := r.db.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE `+cond, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]Message, len(ids))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out[m.ID] = m
	}
	return out, rows.Err()
}

// ListMessages lists a session's messages in sequence order.
func (r *Reader) ListMessages(ctx context.Context, sessionID string, p Page) ([]Message, string, error) {
	list := "messages:" + sessionID
	limit, after, err := bounds(p, list)
	if err != nil {
		return nil, "", err
	}
	seq := 0
	if after != "" {
		if seq, err = strconv.Atoi(after); err != nil {
			v := &domain.ValidationError{}
			v.Add("cursor", "is not a cursor of this list")
			return nil, "", v
		}
	}
	rows, err := r.db.Query(ctx, `SELECT `+messageCols+` FROM messages
		WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, sessionID, seq, limit+1)
	return collect(rows, err, scanMessage, limit, list, func(m Message) string { return strconv.Itoa(m.Seq) })
}

// Stats counts a tenant's rows in the query tables, and its events.
func (r *Reader) Stats(ctx context.Context, tenant string) (Stats, error) {
	var s Stats
	err := r.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM users WHERE tenant = $1), (SELECT count(*) FROM sessions WHERE tenant = $1),
		(SELECT count(*) FROM messages WHERE tenant = $1), (SELECT count(*) FROM memories WHERE tenant = $1 AND (expires_at IS NULL OR expires_at > now())),
		(SELECT count(*) FROM events WHERE metadata->>'tenant' = $1)`, tenant).Scan(&s.Users, &s.Sessions, &s.Messages, &s.Memories, &s.Events)
	if err != nil {
		return s, fmt.Errorf("count resources: %w", err)
	}
	return s, nil
}

// ExpiredSessions lists up to limit open sessions whose expiry time has
// passed; see dueExpiries for the order and for skip and last.
func (r *Reader) ExpiredSessions(ctx context.Context, now time.Time, limit int, skip, last []string) ([]ExpiryDue, error) {
	return r.dueExpiries(ctx, `sessions WHERE status = 'open' AND expires_at <= $1`, now, limit, skip, last)
}

// ExpiredMemories lists up to limit memories whose expiry time has passed;
// see dueExpiries for the order and for skip and last.
func (r *Reader) ExpiredMemories(ctx context.Context, now time.Time, limit int, skip, last []string) ([]ExpiryDue, error) {
	return r.dueExpiries(ctx, `memories WHERE expires_at <= $1`, now, limit, skip, last)
}

// dueExpiries lists up to limit of the entities the filter from (a table
// and a condition on $1, now) selects, by expiry time, but those in last
// after all others; those in skip are left out. The expirer passes the
// entities it failed on: those waiting out their failure as skip, those
// past their wait as last, so failing ones cannot fill the page. Each part
// is read along the due index on its own and at most limit long, so a
// pass costs its page, not the backlog.
func (r *Reader) dueExpiries(ctx context.Context, from string, now time.Time, limit int, skip, last []string) ([]ExpiryDue, error) {
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `SELECT id, version FROM (
			(SELECT id, version, expires_at, false AS retried FROM `+from+`
				AND id <> ALL ($3::text[]) AND id <> ALL ($4::text[]) ORDER BY expires_at LIMIT $2)
			UNION ALL
			(SELECT id, version, expires_at, true FROM `+from+`
				AND id = ANY ($4::text[]) AND id <> ALL ($3::text[]) ORDER BY expires_at LIMIT $2)) due
		ORDER BY retried, expires_at, id LIMIT $2`, now, limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("list due expiries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ExpiryDue, error) {
		var d ExpiryDue
		return d, row.Scan(&d.ID, &d.Version)
	})
	if err != nil {
		return nil, fmt.Errorf("list due expiries: %w", err)
	}
	return out, nil
}

func bounds(p Page, list string) (int, string, error) {
	limit, err := p.limit()
	if err != nil {
		return 0, "", err
	}
	after, err := p.after(list)
	return limit, after, err
}

// collect scans up to limit+1 rows into a page.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error), limit int, list string, key func(T) string) ([]T, string, error) {
	if err != nil {
		return nil, "", fmt.Errorf("read: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("read: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("read: %w", err)
	}
	items, next := pageOf(out, limit, list, key)
	return items, next, nil
}

// Storable says whether Postgres can hold s as text: valid UTF-8 with no
// NUL byte. Postgres refuses any other text with an error, so an id that
// is not storable names nothing.
func Storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// notFound turns "no row" into domain.ErrNotFound.
func notFound(err error, what, id string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s %s", domain.ErrNotFound, what, id)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}
