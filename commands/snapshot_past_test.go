package commands_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/tokens"
)

// liveEnv is a command service whose events the read model's projections
// apply as they come, as in the server.
type liveEnv struct {
	svc      *commands.Service
	store    *eventstore.Store
	reader   *readmodel.Reader
	waiter   *projections.Waiter
	notifier *eventstore.Notifier
	tokens   domain.TokenCounter
	rebuild  func(t *testing.T, p projections.Projection)
	pool     *pgxpool.Pool
	url      string
}

// readerFinder finds messages in the read model, as the server does.
type readerFinder struct{ r *readmodel.Reader }

func (f readerFinder) FindMessage(ctx context.Context, id string) (string, int, error) {
	m, err := f.r.GetMessage(ctx, id)
	return m.SessionID, m.Seq, err
}

func newLiveEnv(t testing.TB) *liveEnv {
	t.Helper()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := eventstore.NewNotifier(pool, log)
	ctx, cancel := context.WithCancel(context.Background())
	store := eventstore.New(pool, eventstore.WithAppendHook(n.Notify))
	ps := append([]projections.Projection{projections.Streams{}}, readmodel.All()...)
	eng, err := projections.NewEngine(pool, n, ps, projections.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { n.Run(ctx); done <- struct{}{} }()
	go func() { _ = eng.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	reader := readmodel.NewReader(pool)
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	e := &liveEnv{svc: commands.New(store, tc, readerFinder{reader}, time.Now), store: store, reader: reader,
		waiter: projections.NewWaiter(pool, names, eng.Committed()), notifier: n, tokens: tc, pool: pool, url: url}
	e.rebuild = func(t *testing.T, p projections.Projection) {
		t.Helper()
		cp, err := projections.NewCopy(context.Background(), pool, n, p, projections.OnlineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Replace(context.Background()); err != nil {
			t.Fatalf("rebuild %s: %v", p.Name(), err)
		}
	}
	return e
}

// caughtUp waits, up to a deadline, until the projections hold the event at c.
func (e *liveEnv) caughtUp(t testing.TB, c eventstore.Cursor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.waiter.Wait(ctx, c); err != nil {
		t.Fatalf("projections did not reach %s: %v", c, err)
	}
}

// The snapshot of an assistant message holds each item as it was at the
// message, however late the pass records it: a user message edited, an
// earlier message redacted and a memory changed right after the answer
// (and, in the second case, the projections rebuilt too) leave the
// snapshot as the window was when the answer was appended: the same
// items, at their versions then, with their costs and texts then.
func TestSnapshotHoldsItemsAsTheyWereAtTheMessage(t *testing.T) {
	t.Parallel()
	for _, rebuilt := range []bool{false, true} {
		name := "pass after the changes"
		if rebuilt {
			name = "pass after the changes and a rebuild"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			snapshotAfterChanges(t, rebuilt)
		})
	}
}

func snapshotAfterChanges(t *testing.T, rebuild bool) {
	ctx := context.Background()
	e := newLiveEnv(t)
	meta := commands.Meta{RequestID: "test", Actor: "test", Scope: domain.Scope{Tenant: "default"}}
	u, err := e.svc.RegisterUser(ctx, meta, domain.RegisterUser{ExternalID: "bees", Name: "Bee Keeper"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := e.svc.StartSession(ctx, meta, u.ID, domain.StartSession{Title: "bees"})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := e.svc.StoreMemory(ctx, meta, u.ID, domain.StoreMemory{Type: "semantic", Content: "bees like lavender and thyme"})
	if err != nil {
		t.Fatal(err)
	}
	earlier := []domain.NewMessage{{Role: "user", Content: "an earlier remark about the garden"}}
	if _, err := e.svc.AppendMessages(ctx, meta, sess.ID, earlier); err != nil {
		t.Fatal(err)
	}
	// A summary of the earlier message, which its redaction below
	// withdraws from the tables: the pass then works out the summary
	// standing at the answer from the log (all the messages fit the
	// default budget, so the window takes none either way).
	if _, err := e.svc.RecordSummary(ctx, meta, 0, map[string]int{earlier[0].MessageID.String(): 1}, domain.SessionSummarizedData{
		SessionID: sess.ID, UserID: u.ID, Content: "the user gardens", FromSeq: 1, ToSeq: 1, Method: "test"}); err != nil {
		t.Fatal(err)
	}
	turn := []domain.NewMessage{{Role: "user", Content: "original question about bees"}, {Role: "assistant", Content: "an answer"}}
	res, err := e.svc.AppendMessages(ctx, meta, sess.ID, turn)
	if err != nil {
		t.Fatal(err)
	}
	e.caughtUp(t, res.Cursor)
	answer, question, gone := turn[1].MessageID.String(), turn[0].MessageID.String(), earlier[0].MessageID.String()

	// The window as it stands at the answer: what its snapshot must hold.
	w, err := e.reader.Window(ctx, sess.ID, readmodel.WindowRequest{Budget: domain.DefaultBudget(), BeforeSeq: 3, Now: time.Now()}, e.tokens)
	if err != nil {
		t.Fatal(err)
	}
	want := w.Snapshot()
	for _, id := range []string{gone, question, mem.ID} {
		if !slices.ContainsFunc(want, func(it domain.SnapshotItem) bool { return it.ID == id }) {
			t.Fatalf("the window before the changes lacks %s: %+v", id, want)
		}
	}

	// Right after the answer, before any snapshot pass: the question is
	// edited (much longer), the earlier message redacted, a memory
	// stored, the first memory rewritten.
	edited := "edited text: a much longer question about bees, wasps, hornets and their nests in the shade"
	if _, err := e.svc.EditMessage(ctx, meta, question, nil, domain.EditMessage{Content: &edited}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RedactMessage(ctx, meta, gone, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StoreMemory(ctx, meta, u.ID, domain.StoreMemory{Type: "semantic", Content: "bees, a memory stored after the answer"}); err != nil {
		t.Fatal(err)
	}
	newText := "bees avoid mint entirely, a new note replacing the old one"
	last, err := e.svc.UpdateMemory(ctx, meta, mem.ID, nil, domain.UpdateMemory{Content: &newText})
	if err != nil {
		t.Fatal(err)
	}
	e.caughtUp(t, last.Cursor)
	if rebuild {
		for _, p := range []projections.Projection{readmodel.Messages{}, readmodel.Memories{}, readmodel.Context{}} {
			e.rebuild(t, p)
		}
	}

	x := commands.NewSnapshotter(e.svc, app.NewSnapshotSource(e.reader, e.tokens, history.New(e.store)), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n, err := x.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("the pass recorded %d snapshots (%v), want the answer's", n, err)
	}
	v, err := e.store.StreamVersion(ctx, domain.StreamID(domain.StreamSnapshot, commands.SnapshotIDOf(answer)))
	if err != nil || v != 1 {
		t.Fatalf("snapshot of the answer at version %d (%v)", v, err)
	}
	recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamSnapshot, commands.SnapshotIDOf(answer)), 1)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := domain.DecodeEvent(recs[0].Type, recs[0].SchemaVersion, recs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	got := ev.Data.(domain.ContextSnapshotData)
	if !slices.Equal(got.Items, want) {
		t.Errorf("snapshot items:\n got %+v\nwant %+v (the window at the answer)", got.Items, want)
	}
	if got.TotalTokens != w.TotalTokens || got.Query != w.Query {
		t.Errorf("snapshot total %d, query %q; want %d, %q", got.TotalTokens, got.Query, w.TotalTokens, w.Query)
	}
	items, err := history.New(e.store).Items(ctx, sess.ID, got.Items)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, it := range items {
		texts[it.ID] = it.Content
	}
	for id, text := range map[string]string{gone: earlier[0].Content, question: turn[0].Content, mem.ID: "bees like lavender and thyme"} {
		if texts[id] != text {
			t.Errorf("item %s reads %q, want %q as it was at the answer", id, texts[id], text)
		}
	}
}
