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
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/projections/readmodel"
)

// Idempotency limits.
const (
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
// request claimed: its events carry it (see appliedAnswer).
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

// IdempotencyStore keeps the answers to POSTs sent with an
// Idempotency-Key (idempotency.Store in Postgres). Idempotency decides
// what to keep and when a claim was abandoned; the store keeps it.
type IdempotencyStore interface {
	// Claim takes actor's key for the request with fingerprint fp,
	// named by token; ok is false when the key is held.
	Claim(ctx context.Context, actor, key, fp string) (token uint64, ok bool, err error)
	// Held reads what the key holds; ok is false when nothing does.
	Held(ctx context.Context, actor, key string) (idempotency.Held, bool, error)
	// Applied finds in the log the events of the request that claimed
	// the key in transaction claimedIn.
	Applied(ctx context.Context, actor, key string, claimedIn uint64) (idempotency.Applied, bool, error)
	// Save keeps the answer of the claim token; Release gives it up.
	Save(ctx context.Context, actor, key string, token uint64, a idempotency.Answer) error
	Release(ctx context.Context, actor, key string, token uint64) error
}

// givenUp are the claims this process gave up (their requests failed
// before anything was appended) but could not release, as the database
// was unreachable (see Idempotency): a retry with the key releases such
// a claim first and runs at once, instead of being refused until the
// claim is taken for abandoned. A claim is forgotten once released, or
// once it is old enough to be found abandoned anyway.
type givenUp struct {
	mu     sync.Mutex
	claims map[givenUpKey]time.Time // when the claim was given up
}

// givenUpKey names a claim: its actor, key and token.
type givenUpKey struct {
	actor, key string
	token      uint64
}

// add remembers a claim given up but not released.
func (g *givenUp) add(actor, key string, token uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for k, at := range g.claims {
		if now.Sub(at) > idempotencyPending {
			delete(g.claims, k) // found abandoned by now, if still held
		}
	}
	if g.claims == nil {
		g.claims = map[givenUpKey]time.Time{}
	}
	g.claims[givenUpKey{actor, key, token}] = now
}

// has tells whether the claim was given up by this process.
func (g *givenUp) has(actor, key string, token uint64) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.claims[givenUpKey{actor, key, token}]
	return ok
}

// forget drops a claim released.
func (g *givenUp) forget(actor, key string, token uint64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.claims, givenUpKey{actor, key, token})
}

// claim takes the key for this request, or returns what is held under
// it. A claim taken is named by the transaction it was taken in (token):
// saving or releasing it touches that claim only, never one another
// request took after it was found abandoned.
//
// A claim in given (one this process gave up but could not release) is
// released, and the key claimed again.
func claim(ctx context.Context, s IdempotencyStore, given *givenUp, actor, key, fp string) (claimed bool, token uint64, st idempotency.Held, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		token, ok, err := s.Claim(ctx, actor, key, fp)
		if err != nil {
			return false, 0, idempotency.Held{}, err
		}
		if ok {
			return true, token, idempotency.Held{}, nil
		}
		st, ok, err := s.Held(ctx, actor, key)
		if err != nil {
			return false, 0, idempotency.Held{}, err
		}
		if !ok {
			continue // released meanwhile; claim again
		}
		if st.Answer == nil && given.has(actor, key, st.ClaimedIn) {
			// Its request failed before it appended anything: run again.
			if err := s.Release(ctx, actor, key, st.ClaimedIn); err != nil {
				return false, 0, idempotency.Held{}, err
			}
			given.forget(actor, key, st.ClaimedIn)
			continue
		}
		age := st.Age
		if st.Answer == nil && age > idempotencyPending && age <= idempotency.TTL {
			// Unanswered for long: the server that took it stopped. If
			// the request's events are in the log, it was applied, and
			// this answers for it; else it runs again.
			found, ok, err := s.Applied(ctx, actor, key, st.ClaimedIn)
			if err != nil {
				return false, 0, idempotency.Held{}, err
			}
			if ok {
				ans, err := appliedAnswer(found)
				if err != nil {
					return false, 0, idempotency.Held{}, err
				}
				if err := s.Save(ctx, actor, key, st.ClaimedIn, ans); err != nil {
					return false, 0, idempotency.Held{}, err
				}
				st.Answer = &ans
				return false, 0, st, nil
			}
		}
		if age > idempotency.TTL || (st.Answer == nil && age > idempotencyPending) {
			if err := s.Release(ctx, actor, key, st.ClaimedIn); err != nil {
				return false, 0, idempotency.Held{}, err
			}
			continue
		}
		return false, 0, st, nil
	}
	return false, 0, idempotency.Held{}, errorf(ErrIdempotencyInProgress, "the key is being reused concurrently")
}

// appliedAnswer is the answer to a request whose events the log holds but
// whose own answer was lost: what a command answers when it does not wait
// for the query tables (202, the id of the entity its first event went
// to, the position of its last; for a message append, the messages and
// their sequence numbers; see settle).
func appliedAnswer(a idempotency.Applied) (idempotency.Answer, error) {
	streamType, id, err := domain.ParseStreamID(a.Stream)
	if err != nil {
		return idempotency.Answer{}, fmt.Errorf("answer idempotency key from its events: %w", err)
	}
	answer := gin.H{"id": id, "version": a.Version, "position": a.Last.String()}
	if streamType == domain.StreamMessageLog {
		// A message append: the messages with their sequence numbers; one
		// message is answered by its id and version, as its 201 was.
		var messages []appendedMessage
		for _, m := range a.Messages {
			messages = append(messages, appendedMessage{ID: m.ID, Seq: m.Seq})
		}
		answer["messages"] = messages
		if len(messages) == 1 {
			answer["id"], answer["version"] = messages[0].ID, 1
		}
	}
	body, err := json.Marshal(answer)
	if err != nil {
		return idempotency.Answer{}, fmt.Errorf("encode the answer of an applied request: %w", err)
	}
	return idempotency.Answer{Status: http.StatusAccepted, Body: body, Headers: map[string]string{
		"Content-Type": "application/json; charset=utf-8", headerPosition: a.Last.String()}}, nil
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
// the input (400, 413, 415, 422), is not kept, so a retry runs again (but
// a 503 outcome-unknown keeps the claim: a retry after it lapses looks in
// the log); when the database is down even for the release, this process
// remembers the claim and the retry releases it first, at once. An
// answer whose data was erased since is forgotten: a retry gets 410.
// The reads sent by POST (readPosts) ignore the key: a read kept and
// replayed would answer with the state of its first call for a day.
func Idempotency(store IdempotencyStore) gin.HandlerFunc {
	given := &givenUp{}
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
			if readTimedOut(err) {
				WriteError(c, errorf(ErrRequestTimeout, "the body was not sent in time"))
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
		claimed, token, st, err := claim(context.WithoutCancel(c.Request.Context()), store, given, actor, key, fp)
		if err != nil {
			WriteError(c, err)
			return
		}
		if !claimed {
			switch {
			case st.Fingerprint != fp:
				WriteError(c, errorf(ErrIdempotencyMismatch, "Idempotency-Key %q was used for another request", key))
			case st.Answer == nil:
				wait := max(idempotencyPending-st.Age, time.Second)
				c.Header("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)))
				WriteError(c, errorf(ErrIdempotencyInProgress,
					"the first request with this key has not answered yet; if its server stopped, a retry after %s finds out whether it was applied", wait.Round(time.Second)))
			case st.Answer.Erased:
				// The data the answer held was erased (see package
				// idempotency): the answer is gone with it.
				c.Header("Idempotent-Replayed", "true")
				WriteError(c, fmt.Errorf("%w: the answer to the request with Idempotency-Key %q held data that was erased since", domain.ErrErased, key))
			default:
				for k, v := range st.Answer.Headers {
					c.Header(k, v)
				}
				c.Header("Idempotent-Replayed", "true")
				c.Data(st.Answer.Status, st.Answer.Headers["Content-Type"], st.Answer.Body)
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
			if err := store.Release(ctx, actor, key, token); err != nil {
				// The database is most likely unreachable (the request
				// failed as it was): a retry with the key, once it is
				// back, releases the claim first (see givenUp).
				given.add(actor, key, token)
				logger(c).Warn("release idempotency key: a retry releases it", "err", err)
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
		if err := store.Save(ctx, actor, key, token, idempotency.Answer{Status: w.Status(), Headers: headers, Body: answer}); err != nil {
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
