package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
	"github.com/arq-memory/arq/vault"
)

// marker is written into every personal field; after an erasure no read
// of the log may return it.
const marker = "okapi-marker-4417"

// answers is the API's store of idempotent answers, as the commands see
// it (app wires the same).
type answers struct{ s *idempotency.Store }

func (a answers) EraseAnswers(ctx context.Context, scope commands.AnswerScope) (int64, error) {
	return a.s.Erase(ctx, idempotency.Erasure{Streams: scope.Streams, EventIDs: scope.EventIDs, Owner: scope.Owner, Actor: scope.Actor, Key: scope.Key})
}

// erasing is a command service over a sealing log, with the key store
// and the answers kept for retries, as a server has them.
type erasing struct {
	svc     *commands.Service
	store   *eventstore.Store
	vault   *vault.Vault
	answers *idempotency.Store
	pool    *pgxpool.Pool
}

func newErasing(t *testing.T) *erasing {
	t.Helper()
	pool := testdb.Pool(t, testdb.New(t))
	m, err := vault.ParseMaster(vault.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(pool, vault.NewKeyring(m), true)
	store := eventstore.New(pool, eventstore.WithSealer(v))
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	svc := commands.New(store, tc, logFinder{store}, time.Now)
	svc.SetNamer(v)
	ans := idempotency.New(pool)
	svc.SetErasure(commands.Erasure{Shredder: v, Answers: answers{ans}})
	return &erasing{svc: svc, store: store, vault: v, answers: ans, pool: pool}
}

// must returns a command's result, failing the test on its error:
// must(t)(svc.Command(...)).
func must(t *testing.T) func(commands.Result, error) commands.Result {
	return func(r commands.Result, err error) commands.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// history is everything of a user's in the log, opened as every read
// opens it.
func (e *erasing) history(t *testing.T, userID string) []eventstore.Recorded {
	t.Helper()
	streams, err := e.store.UserStreams(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Recorded
	for _, s := range streams {
		recs, err := e.store.ReadStream(context.Background(), s, 1)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

// types are the event types of a stream, in order.
func (e *erasing) types(t *testing.T, stream string) []string {
	t.Helper()
	recs, err := e.store.ReadStream(context.Background(), stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

// conversation is a user with a session of three messages, a memory, two
// summaries (of message 1, then of 1 to 2) and two snapshots (one holding
// message 2, one not), every personal field holding the marker.
type conversation struct {
	user, session, memory string
	messages              []string
	summaries             []string // the summaries' event ids
	snapshots             []string // holding message 2, not holding it
}

func (e *erasing) converse(t *testing.T, meta commands.Meta) conversation {
	t.Helper()
	ctx := context.Background()
	var c conversation
	c.user = must(t)(e.svc.RegisterUser(ctx, meta, domain.RegisterUser{ExternalID: marker + "-ext", Name: marker, Email: "a@example.com", Metadata: map[string]any{"k": marker}})).ID
	c.session = must(t)(e.svc.StartSession(ctx, meta, c.user, domain.StartSession{Title: marker, Metadata: map[string]any{"k": marker}})).ID
	msgs := must(t)(e.svc.AppendMessages(ctx, meta, c.session, []domain.NewMessage{
		{Role: "user", Content: "one " + marker}, {Role: "assistant", Content: "two " + marker, Embedding: []float64{1, 2}}, {Role: "user", Content: "three " + marker},
	}))
	for _, m := range msgs.Messages {
		c.messages = append(c.messages, m.ID)
	}
	c.memory = must(t)(e.svc.StoreMemory(ctx, meta, c.user, domain.StoreMemory{Type: "semantic", Content: marker, Tags: []string{marker}})).ID
	for i, to := range []int{1, 2} {
		if _, err := e.svc.RecordSummary(ctx, meta, i, map[string]int{c.messages[to-1]: 1}, domain.SessionSummarizedData{
			SessionID: c.session, UserID: c.user, Content: "summary " + marker, FromSeq: 1, ToSeq: to, Method: "test",
		}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamSummary, c.session), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		c.summaries = append(c.summaries, r.EventID)
	}
	for _, items := range [][]domain.SnapshotItem{
		{{Kind: domain.ItemMessage, ID: c.messages[0], Version: 1, Seq: 1}, {Kind: domain.ItemMessage, ID: c.messages[1], Version: 1, Seq: 2}},
		{{Kind: domain.ItemMessage, ID: c.messages[0], Version: 1, Seq: 1}, {Kind: domain.ItemMemory, ID: c.memory, Version: 1}},
	} {
		r := must(t)(e.svc.RecordSnapshot(ctx, meta, domain.ContextSnapshotData{SessionID: c.session, UserID: c.user, Query: "query " + marker, Budget: 100, Items: items}))
		c.snapshots = append(c.snapshots, r.ID)
	}
	return c
}

// readable reports whether an event of the log still opens with the
// marker in it.
func readable(r eventstore.Recorded) bool {
	return !r.Erased && strings.Contains(string(r.Data), marker)
}

// An erased user's every unit is unreadable in the log, which keeps every
// event (types, times, actors) and gains the deletion, the release of the
// external id and the erasure; erasing again appends nothing; the user is
// gone for good, and their external id free for another.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	before := e.history(t, c.user)
	other := e.converse(t, commands.Meta{RequestID: "other", Actor: "test", Scope: domain.Scope{Tenant: "other"}})

	res, err := e.svc.EraseUser(ctx, testMeta, c.user)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cursor.IsZero() || res.Erased == nil || !slices.Equal(res.Erased.Users, []string{c.user}) ||
		!slices.Equal(res.Erased.Sessions, []string{c.session}) || !slices.Equal(res.Erased.Windows, []string{c.session}) ||
		len(res.Erased.Messages) != 3 || !slices.Equal(res.Erased.Memories, []string{c.memory}) {
		t.Fatalf("erasure: %+v %+v", res, res.Erased)
	}
	after := e.history(t, c.user)
	if len(after) != len(before)+3 {
		t.Fatalf("%d events after the erasure, %d before: want the deletion, the release and the erasure more", len(after), len(before))
	}
	for _, r := range after {
		if readable(r) {
			t.Errorf("%s %s of %s still reads %s", r.Type, r.EventID, r.StreamID, r.Data)
		}
		if strings.Contains(r.StreamID, marker) {
			t.Errorf("stream id %s holds the external id", r.StreamID)
		}
	}
	if got := e.types(t, domain.StreamID(domain.StreamUser, c.user)); !slices.Equal(got, []string{domain.UserRegistered, domain.UserDeleted, domain.UserErased}) {
		t.Fatalf("user stream: %v", got)
	}
	// The other user's data (another tenant, the same external id) is
	// untouched.
	for _, r := range e.history(t, other.user) {
		if r.Erased {
			t.Errorf("another user's %s %s is erased", r.Type, r.EventID)
		}
	}

	again, err := e.svc.EraseUser(ctx, testMeta, c.user)
	if err != nil || !again.Cursor.IsZero() || again.Erased == nil {
		t.Fatalf("second erasure: %+v, %v; want success appending nothing", again, err)
	}
	if n := len(e.history(t, c.user)); n != len(after) {
		t.Fatalf("second erasure appended %d events", n-len(after))
	}
	if _, err := e.svc.StoreMemory(ctx, testMeta, c.user, domain.StoreMemory{Type: "semantic", Content: "x"}); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("memory of an erased user: %v, want ErrErased", err)
	}
	if _, err := e.svc.AppendMessages(ctx, testMeta, c.session, []domain.NewMessage{{Role: "user", Content: "x"}}); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("message to an erased user's session: %v, want ErrErased", err)
	}
	if _, err := e.svc.DeleteUser(ctx, testMeta, c.user, nil); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("deletion of an erased user: %v, want ErrErased", err)
	}
	// The external id was released with the deletion.
	must(t)(e.svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: marker + "-ext", Name: "New"}))
	if _, err := e.svc.EraseUser(ctx, testMeta, domain.NewID().String()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("erasure of no user: %v, want ErrNotFound", err)
	}
}

// A user deleted before can be erased, and an erasure that stopped after
// deleting the keys (a crash) is finished by the next one.
func TestEraseDeletedUserAndAfterACrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	must(t)(e.svc.DeleteUser(ctx, testMeta, c.user, nil))
	// The crash: keys deleted, no event.
	if _, err := e.vault.Erase(ctx, []string{c.user}, nil); err != nil {
		t.Fatal(err)
	}
	must(t)(e.svc.EraseUser(ctx, testMeta, c.user))
	if got := e.types(t, domain.StreamID(domain.StreamUser, c.user)); !slices.Equal(got, []string{domain.UserRegistered, domain.UserDeleted, domain.UserErased}) {
		t.Fatalf("user stream: %v", got)
	}
	for _, r := range e.history(t, c.user) {
		if readable(r) {
			t.Errorf("%s %s still reads %s", r.Type, r.EventID, r.Data)
		}
	}
}

// An erased message is unreadable with the summaries and snapshots that
// held it, which its event names; the rest of the session stays readable;
// it refuses changes; erasing again appends nothing, unless a snapshot
// taken from its text meanwhile turned up.
func TestEraseMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	target := c.messages[1]

	res, err := e.svc.EraseMessage(ctx, testMeta, target)
	if err != nil {
		t.Fatal(err)
	}
	if res.Erased == nil || !slices.Equal(res.Erased.Messages, []string{target}) || !slices.Equal(res.Erased.Windows, []string{c.session}) {
		t.Fatalf("erasure: %+v", res.Erased)
	}
	recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamMessage, target), 1)
	if err != nil || len(recs) != 1 || recs[0].Type != domain.MessageErased {
		t.Fatalf("message stream: %v, %v", recs, err)
	}
	var d domain.MessageErasedData
	if err := json.Unmarshal(recs[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.SessionID != c.session || d.UserID != c.user || d.Seq != 2 || d.Reason != domain.ErasedOnRequest ||
		!slices.Equal(d.Summaries, c.summaries[1:]) || !slices.Equal(d.Snapshots, c.snapshots[:1]) {
		t.Fatalf("message.erased %+v; want seq 2, summary %v, snapshot %v", d, c.summaries[1:], c.snapshots[:1])
	}
	erased := map[string]bool{}
	for _, r := range e.history(t, c.user) {
		if r.Erased {
			erased[r.Type+" "+r.StreamID] = true
			continue
		}
		if strings.Contains(string(r.Data), "two "+marker) {
			t.Errorf("%s %s still reads the erased text: %s", r.Type, r.EventID, r.Data)
		}
	}
	want := map[string]bool{
		domain.SessionSummarized + " " + domain.StreamID(domain.StreamSummary, c.session):             true,
		domain.ContextSnapshotRecorded + " " + domain.StreamID(domain.StreamSnapshot, c.snapshots[0]): true,
		domain.MessageAppended + " " + domain.StreamID(domain.StreamMessageLog, c.session):            true,
	}
	if len(erased) != len(want) {
		t.Errorf("erased events: %v; want %v", erased, want)
	}
	for k := range want {
		if !erased[k] {
			t.Errorf("not erased: %s", k)
		}
	}
	// The rest is readable: messages 1 and 3, the first summary, the
	// other snapshot.
	log, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamMessageLog, c.session), 1)
	if err != nil || len(log) != 3 || !readable(log[0]) || !readable(log[2]) || !log[1].Erased {
		t.Fatalf("session log after the erasure: %v", log)
	}
	content := "again"
	if _, err := e.svc.EditMessage(ctx, testMeta, target, nil, domain.EditMessage{Content: &content}); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("edit of an erased message: %v, want ErrErased", err)
	}
	if again, err := e.svc.EraseMessage(ctx, testMeta, target); err != nil || !again.Cursor.IsZero() {
		t.Fatalf("second erasure: %+v, %v; want success appending nothing", again, err)
	}
	// A snapshot made from the text while the query tables still held
	// it: the next erasure erases and records it.
	late := must(t)(e.svc.RecordSnapshot(ctx, testMeta, domain.ContextSnapshotData{SessionID: c.session, UserID: c.user, Query: "late " + marker,
		Items: []domain.SnapshotItem{{Kind: domain.ItemMessage, ID: target, Version: 1, Seq: 2}}})).ID
	if again := must(t)(e.svc.EraseMessage(ctx, testMeta, target)); again.Cursor.IsZero() {
		t.Fatal("an erasure finding a late snapshot appended nothing")
	}
	snap, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamSnapshot, late), 1)
	if err != nil || len(snap) != 1 || !snap[0].Erased {
		t.Fatalf("late snapshot after the next erasure: %v, %v", snap, err)
	}
	if got := e.types(t, domain.StreamID(domain.StreamMessage, target)); !slices.Equal(got, []string{domain.MessageErased, domain.MessageErased}) {
		t.Fatalf("message stream: %v", got)
	}
	if _, err := e.svc.EraseMessage(ctx, testMeta, domain.NewID().String()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("erasure of no message: %v, want ErrNotFound", err)
	}
}

// A summary recorded between finding what holds a message and recording
// its erasure is found by the erasure's retry, not left readable.
func TestEraseMessageRacingASummary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	target := c.messages[2]
	// The shredder records a summary of the whole session the first time
	// it is called, as a summarizer racing the erasure would.
	var once sync.Once
	var raced commands.Result
	e.svc.SetErasure(commands.Erasure{Shredder: shredderFunc(func(ctx context.Context, owners, keyIDs []string) (int64, error) {
		once.Do(func() {
			raced = must(t)(e.svc.RecordSummary(ctx, testMeta, 2, map[string]int{target: 1}, domain.SessionSummarizedData{
				SessionID: c.session, UserID: c.user, Content: "raced " + marker, FromSeq: 1, ToSeq: 3, Method: "test"}))
		})
		return e.vault.Erase(ctx, owners, keyIDs)
	})})
	must(t)(e.svc.EraseMessage(ctx, testMeta, target))
	recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamSummary, c.session), 3)
	if err != nil || len(recs) != 1 || raced.Cursor.IsZero() {
		t.Fatalf("raced summary: %v, %v", recs, err)
	}
	if !recs[0].Erased {
		t.Fatalf("a summary recorded while the erasure ran still reads %s", recs[0].Data)
	}
}

type shredderFunc func(ctx context.Context, owners, keyIDs []string) (int64, error)

func (f shredderFunc) Erase(ctx context.Context, owners, keyIDs []string) (int64, error) {
	return f(ctx, owners, keyIDs)
}

// An erased memory is unreadable and refuses changes; a deleted one may
// be erased; erasing again appends nothing.
func TestEraseMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	must(t)(e.svc.DeleteMemory(ctx, testMeta, c.memory, nil))
	res := must(t)(e.svc.EraseMemory(ctx, testMeta, c.memory))
	if res.Erased == nil || !slices.Equal(res.Erased.Memories, []string{c.memory}) || !slices.Equal(res.Erased.Windows, []string{c.session}) {
		t.Fatalf("erasure: %+v", res.Erased)
	}
	recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamMemory, c.memory), 1)
	if err != nil || len(recs) != 3 || !recs[0].Erased || recs[2].Type != domain.MemoryErased {
		t.Fatalf("memory stream: %v, %v", recs, err)
	}
	content := "x"
	if _, err := e.svc.UpdateMemory(ctx, testMeta, c.memory, nil, domain.UpdateMemory{Content: &content}); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("update of an erased memory: %v, want ErrErased", err)
	}
	if again, err := e.svc.EraseMemory(ctx, testMeta, c.memory); err != nil || !again.Cursor.IsZero() {
		t.Fatalf("second erasure: %+v, %v", again, err)
	}
	// The user's other data is untouched.
	for _, r := range e.history(t, c.user) {
		if r.Erased && r.StreamID != domain.StreamID(domain.StreamMemory, c.memory) {
			t.Errorf("%s %s of %s erased with the memory", r.Type, r.EventID, r.StreamID)
		}
	}
}

// The answers kept for retries of the requests behind an erased user's
// events are forgotten (erased), also one still unanswered; the erasing
// request's own and another user's are kept.
func TestErasureForgetsKeptAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	claim := func(key string) uint64 {
		token, ok, err := e.answers.Claim(ctx, "caller", key, "fp")
		if err != nil || !ok {
			t.Fatalf("claim %s: %v %v", key, ok, err)
		}
		return token
	}
	as := func(key string) commands.Meta {
		return commands.Meta{RequestID: key, Actor: "caller", Scope: domain.Scope{Tenant: "default"}, IdempotencyKey: key}
	}
	save := func(key string, token uint64) {
		if err := e.answers.Save(ctx, "caller", key, token, idempotency.Answer{Status: 201, Body: []byte(`{"name":"` + marker + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	reg := claim("register")
	u := must(t)(e.svc.RegisterUser(ctx, as("register"), domain.RegisterUser{ExternalID: "ans", Name: marker}))
	save("register", reg)
	pending := claim("memory")
	must(t)(e.svc.StoreMemory(ctx, as("memory"), u.ID, domain.StoreMemory{Type: "semantic", Content: marker}))
	otherToken := claim("other")
	must(t)(e.svc.RegisterUser(ctx, as("other"), domain.RegisterUser{ExternalID: "other", Name: marker}))
	save("other", otherToken)
	claim("erase")

	must(t)(e.svc.EraseUser(ctx, as("erase"), u.ID))
	held := func(key string) idempotency.Held {
		h, ok, err := e.answers.Held(ctx, "caller", key)
		if err != nil || !ok {
			t.Fatalf("held %s: %v %v", key, ok, err)
		}
		return h
	}
	for _, key := range []string{"register", "memory"} {
		if h := held(key); h.Answer == nil || !h.Answer.Erased || h.Answer.Status != 410 || h.Answer.Body != nil {
			t.Errorf("answer of %s after the erasure: %+v", key, h.Answer)
		}
	}
	// The unanswered claim's answer, when it comes, is not kept.
	save("memory", pending)
	if h := held("memory"); !h.Answer.Erased {
		t.Errorf("an answer saved after the erasure replaced the erased one: %+v", h.Answer)
	}
	if h := held("other"); h.Answer == nil || h.Answer.Erased || !strings.Contains(string(h.Answer.Body), marker) {
		t.Errorf("another user's answer: %+v", h.Answer)
	}
	if h := held("erase"); h.Answer != nil {
		t.Errorf("the erasing request's own claim: %+v; want it unanswered, to be answered", h.Answer)
	}
}
