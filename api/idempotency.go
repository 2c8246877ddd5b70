package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections/readmodel"
)

// Idempotency limits.
const (
	idempotencyTTL     = 24 * time.Hour
	idempotencyPending = time.Minute // a claim older than this, unanswered, was abandoned
	maxIdempotencyKey  = 255
	// idempotentRequestLimit bounds a request that claimed a key: its
	// appends are queued by then, and each ends within
	// eventstore.AppendLimit of its start, so none commits once its claim
	// is old enough to be taken for abandoned.
	idempotentRequestLimit = idempotencyPending - eventstore.AppendLimit - 5*time.Second
)

// The request's bound and an append's must fit in the claim's minute, the
// request's bound above zero: these fail to compile otherwise (a negative
// constant does not convert to uint64).
const (
	_ = uint64(idempotencyPending - idempotentRequestLimit - eventstore.AppendLimit - 1)
	_ = uint64(idempotentRequestLimit - 1)
)

// replayedHeaders are the answer headers a replay repeats. (Not
// X-Arq-Session-Token: see shownOnce.)
var replayedHeaders = []string{"Content-Type", "Location", "ETag", headerPosition}

// secretsKey holds, in a request's context, the secrets its answer shows
// once (see shownOnce).
const secretsKey = "arq.secrets"

// idempotencyKeyKey holds, in a request's context, the Idempotency-Key the
// request claimed: its events carry it (see IdempotencyStore.applied).
const idempotencyKeyKey = "arq.idempotency_key"

// outcomeUnknownKey is set, in a request's context, when its answer says
// an append's outcome is unknown (see WriteError).
const outcomeUnknownKey = "arq.outcome_unknown"

// shownOnce marks secrets (a new session's token, a new API key) that the
// answer to this request shows once: an answer kept for an idempotent
// retry keeps none of them (their JSON strings become null), so a replay
// answers without them and the database holds only their hashes.
func shownOnce(c *gin.Context, secrets ...string) { c.Set(secretsKey, secrets) }

// withoutSecrets returns body with each secret's JSON string replaced by
// null. A secret is random text, so it appears nowhere else.
func withoutSecrets(body []byte, secrets []string) []byte {
	for _, s := range secrets {
		quoted, err := json.Marshal(s)
		if err != nil || s == "" {
			continue
		}
		body = bytes.ReplaceAll(body, quoted, []byte("null"))
	}
	return body
}

// Prune deletes the answers kept longer than a retry may come (a day);
// it returns how many it deleted. A claim is also released when a request
// with its key finds it old, but keys never reused would stay forever.
func (s *IdempotencyStore) Prune(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval`, idempotencyTTL.String())
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// IdempotencyStore keeps the answers to POSTs sent with an Idempotency-Key.
type IdempotencyStore struct{ db *pgxpool.Pool }

// NewIdempotencyStore returns a store over db.
func NewIdempotencyStore(db *pgxpool.Pool) *IdempotencyStore { return &IdempotencyStore{db: db} }

type stored struct {
	fingerprint string
	status      *int
	headers     map[string]string
	body        []byte
	age         time.Duration // since the claim, by the database's clock
}

// claim takes the key for this request, or returns what is stored under
// it. A claim taken is named by the transaction it was taken in (token):
// saving or releasing it touches that claim only, never one another
// request took after it was found abandoned.
func (s *IdempotencyStore) claim(ctx context.Context, actor, key, fp string) (claimed bool, token uint64, st stored, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		err := s.db.QueryRow(ctx, `INSERT INTO idempotency_keys (actor, key, fingerprint) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING claimed_in`, actor, key, fp).Scan(&token)
		if err == nil {
			return true, token, stored{}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, 0, stored{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		var st stored
		var headers []byte
		var held uint64
		var ageSeconds float64
		err = s.db.QueryRow(ctx, `SELECT fingerprint, status, headers, body, extract(epoch FROM now() - created_at)::float8, claimed_in
			FROM idempotency_keys WHERE actor = $1 AND key = $2`,
			actor, key).Scan(&st.fingerprint, &st.status, &headers, &st.body, &ageSeconds, &held)
		st.age = time.Duration(ageSeconds * float64(time.Second))
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released meanwhile; claim again
		}
		if err != nil {
			return false, 0, stored{}, fmt.Errorf("read idempotency key: %w", err)
		}
		age := st.age
		if st.status == nil && age > idempotencyPending && age <= idempotencyTTL {
			// Unanswered for long: the server that took it stopped. If
			// the request's events are in the log, it was applied, and
			// this answers for it; else it runs again.
			ans, ok, err := s.applied(ctx, actor, key, held)
			if err != nil {
				return false, 0, stored{}, err
			}
			if ok {
				if err := s.save(ctx, actor, key, held, *ans.status, ans.headers, ans.body); err != nil {
					return false, 0, stored{}, err
				}
				ans.fingerprint = st.fingerprint
				return false, 0, ans, nil
			}
		}
		if age > idempotencyTTL || (st.status == nil && age > idempotencyPending) {
			if err := s.release(ctx, actor, key, held); err != nil {
				return false, 0, stored{}, err
			}
			continue
		}
		if headers != nil {
			if err := json.Unmarshal(headers, &st.headers); err != nil {
				return false, 0, stored{}, fmt.Errorf("read idempotency key: %w", err)
			}
		}
		return false, 0, st, nil
	}
	return false, 0, stored{}, errorf(ErrIdempotencyInProgress, "the key is being reused concurrently")
}

// applied looks in the log for the events of the request that claimed
// the key: after the claim's transaction, with the key and the actor in
// their metadata. Found, the answer is what a command answers when it
// does not wait for the query tables (202, the id of the entity its first
// event went to, the position of its last; for a message append, the
// messages and their sequence numbers), as the first answer is lost.
func (s *IdempotencyStore) applied(ctx context.Context, actor, key string, claimedIn uint64) (stored, bool, error) {
	rows, err := s.db.Query(ctx, `SELECT stream_id, version, transaction_id, position, coalesce(data->>'message_id', '') FROM events
		WHERE transaction_id > $3::xid8 AND metadata->>'idempotency_key' = $2 AND metadata->>'actor' = $1
		ORDER BY transaction_id, position`, actor, key, claimedIn)
	if err != nil {
		return stored{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
	}
	defer rows.Close()
	var first string
	var version int
	var messages []appendedMessage // of a message append: each message and its seq
	var last eventstore.Cursor
	for rows.Next() {
		var stream, messageID string
		var v int
		var c eventstore.Cursor
		if err := rows.Scan(&stream, &v, &c.TransactionID, &c.Position, &messageID); err != nil {
			return stored{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
		}
		if first == "" {
			first = stream
		}
		if stream == first {
			version = v
			if messageID != "" {
				messages = append(messages, appendedMessage{ID: messageID, Seq: v})
			}
		}
		last = c
	}
	if err := rows.Err(); err != nil {
		return stored{}, false, fmt.Errorf("look for the events of idempotency key: %w", err)
	}
	if first == "" {
		return stored{}, false, nil
	}
	streamType, id, err := domain.ParseStreamID(first)
	if err != nil {
		return stored{}, false, fmt.Errorf("answer idempotency key from its events: %w", err)
	}
	answer := gin.H{"id": id, "version": version, "position": last.String()}
	if streamType == domain.StreamMessageLog {
		// A message append: the messages with their sequence numbers; one
		// message is answered by its id and version, as its 201 was.
		answer["messages"] = messages
		if len(messages) == 1 {
			answer["id"], answer["version"] = messages[0].ID, 1
		}
	}
	body, err := json.Marshal(answer)
	if err != nil {
		return stored{}, false, err
	}
	status := http.StatusAccepted
	return stored{status: &status, body: body, headers: map[string]string{
		"Content-Type": "application/json; charset=utf-8", headerPosition: last.String()}}, true, nil
}

// save keeps the answer of the claim taken in transaction token (none if
// another request has taken the key since).
func (s *IdempotencyStore) save(ctx context.Context, actor, key string, token uint64, status int, headers map[string]string, body []byte) error {
	h, err := json.Marshal(headers)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `UPDATE idempotency_keys SET status = $3, headers = $4, body = $5 WHERE actor = $1 AND key = $2 AND claimed_in = $6::xid8`,
		actor, key, status, h, body, token)
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// release gives up the claim taken in transaction token (none if another
// request has taken the key since).
func (s *IdempotencyStore) release(ctx context.Context, actor, key string, token uint64) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND claimed_in = $3::xid8`,
		actor, key, token); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// refusedInput are the answers to a request whose input was refused before
// anything was done: they are not kept, so that the key may be used again
// with the input put right.
var refusedInput = map[int]bool{http.StatusBadRequest: true, http.StatusRequestEntityTooLarge: true,
	http.StatusUnsupportedMediaType: true, http.StatusUnprocessableEntity: true}

// canonicalJSON is body with its objects' keys in order and no spaces, so
// that the same JSON written in another order is the same request; body
// as it is when it is not JSON, or when an object has two keys that differ
// only in case (the decoder takes the last of them, so their order
// matters). Numbers keep their text.
func canonicalJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil || dec.More() || caseTwins(doc) {
		return body
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return out
}

// caseTwins tells whether an object in doc has two keys equal but for case.
func caseTwins(doc any) bool {
	switch x := doc.(type) {
	case []any:
		for _, e := range x {
			if caseTwins(e) {
				return true
			}
		}
	case map[string]any:
		seen := make(map[string]bool, len(x))
		for k, e := range x {
			if seen[strings.ToLower(k)] || caseTwins(e) {
				return true
			}
			seen[strings.ToLower(k)] = true
		}
	}
	return false
}

// Idempotency makes a POST sent with an Idempotency-Key safe to retry: the
// first answer is stored (per caller and key) and a retry with the same key
// and the same request gets it again, marked Idempotent-Replayed, without
// running the handler, so nothing is appended twice; secrets the first
// answer showed once are not kept, and the replay holds null in their place. The same key with
// another request (the same JSON in another order is the same) is 422; a
// retry while the first still runs is 409; a 5xx answer, or one refusing
// the input (400, 413, 415, 422), is not kept, so a retry runs again.
// The reads sent by POST (readPosts) ignore the key: a read kept and
// replayed would answer with the state of its first call for a day.
func Idempotency(store *IdempotencyStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.GetHeader("Idempotency-Key")
		if c.Request.Method != http.MethodPost || key == "" || slices.Contains(readPosts, c.FullPath()) {
			c.Next()
			return
		}
		if len(key) > maxIdempotencyKey {
			WriteError(c, errorf(ErrBadRequest, "Idempotency-Key is longer than %d characters", maxIdempotencyKey))
			return
		}
		if !readmodel.Storable(key) {
			WriteError(c, errorf(ErrBadRequest, "Idempotency-Key must be UTF-8 text without the NUL character"))
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				WriteError(c, errorf(ErrTooLarge, "the body is larger than %d bytes", tooLarge.Limit))
				return
			}
			WriteError(c, errorf(ErrBadRequest, "read body: %v", err))
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(append([]byte(c.Request.Method+" "+c.Request.URL.RequestURI()+"\n"), canonicalJSON(body)...))
		fp := hex.EncodeToString(sum[:])
		actor := Actor(c)

		// Not cut short by the client: a claim taken must be known taken.
		claimed, token, st, err := store.claim(context.WithoutCancel(c.Request.Context()), actor, key, fp)
		if err != nil {
			WriteError(c, err)
			return
		}
		if !claimed {
			switch {
			case st.fingerprint != fp:
				WriteError(c, errorf(ErrIdempotencyMismatch, "Idempotency-Key %q was used for another request", key))
			case st.status == nil:
				wait := max(idempotencyPending-st.age, time.Second)
				c.Header("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)))
				WriteError(c, errorf(ErrIdempotencyInProgress,
					"the first request with this key has not answered yet; if its server stopped, a retry after %s finds out whether it was applied", wait.Round(time.Second)))
			default:
				for k, v := range st.headers {
					c.Header(k, v)
				}
				c.Header("Idempotent-Replayed", "true")
				c.Data(*st.status, st.headers["Content-Type"], st.body)
				c.Abort()
			}
			return
		}

		c.Set(idempotencyKeyKey, key)
		bounded, cancel := context.WithTimeout(c.Request.Context(), idempotentRequestLimit)
		defer cancel()
		c.Request = c.Request.WithContext(bounded)
		w := &captureWriter{ResponseWriter: c.Writer}
		c.Writer = w
		// A handler that panics leaves the key claimed: it may have
		// appended, and a retry after the claim lapses finds out.
		c.Next()
		ctx := context.WithoutCancel(c.Request.Context())
		if s := w.Status(); (s >= 500 && !c.GetBool(outcomeUnknownKey)) || refusedInput[s] {
			// Not kept: a retry (with the input put right) runs again. An
			// append of unknown outcome keeps the claim: a retry after it
			// lapses looks in the log.
			if err := store.release(ctx, actor, key, token); err != nil {
				logger(c).Error("release idempotency key", "err", err)
			}
			return
		}
		if w.Status() >= 500 {
			return
		}
		headers := map[string]string{}
		for _, h := range replayedHeaders {
			if v := w.Header().Get(h); v != "" {
				headers[h] = v
			}
		}
		answer := w.buf.Bytes()
		if secrets, ok := c.Get(secretsKey); ok {
			answer = withoutSecrets(answer, secrets.([]string))
		}
		if err := store.save(ctx, actor, key, token, w.Status(), headers, answer); err != nil {
			logger(c).Error("store idempotent answer", "err", err)
		}
	}
}

// captureWriter keeps a copy of the answer's body.
type captureWriter struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
