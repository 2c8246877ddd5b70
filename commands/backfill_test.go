package commands_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/embeddings"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// logFinder finds a message in the log itself: its appended event is in
// its session's message log, at its sequence number.
type logFinder struct{ store *eventstore.Store }

func (f logFinder) FindMessage(ctx context.Context, id string) (string, int, error) {
	recs, err := f.store.MessageAppendedEvent(ctx, id)
	if err != nil {
		return "", 0, err
	}
	if len(recs) != 1 {
		return "", 0, domain.ErrNotFound
	}
	return strings.TrimPrefix(recs[0].StreamID, domain.StreamMessageLog+"-"), recs[0].Version, nil
}

// listedTexts is the read model's list of texts without an embedding as it
// stood when the backfill began: fixed, so texts changed since are listed
// at the version they had.
type listedTexts map[string][]domain.TextToEmbed

func (l listedTexts) Count(_ context.Context, kind string) (int64, error) {
	return int64(len(l[kind])), nil
}

func (l listedTexts) Page(_ context.Context, kind, after string, limit int) ([]domain.TextToEmbed, error) {
	all := slices.Clone(l[kind])
	slices.SortFunc(all, func(a, b domain.TextToEmbed) int { return strings.Compare(a.ID, b.ID) })
	var out []domain.TextToEmbed
	for _, t := range all {
		if t.ID > after && len(out) < limit {
			out = append(out, t)
		}
	}
	return out, nil
}

// embeddingEndpoint is an OpenAI-compatible /embeddings endpoint that gives
// every text (its length, 1, 1) and records how many texts each request
// held.
func embeddingEndpoint(t *testing.T) (*httptest.Server, func() []int) {
	var mu sync.Mutex
	var batches []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		batches = append(batches, len(req.Input))
		mu.Unlock()
		var data []map[string]any
		for i, text := range req.Input {
			data = append(data, map[string]any{"index": i, "embedding": []float64{float64(len(text)), 1, 1}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(batches)
	}
}

// lastEvent is the newest event of a stream.
func lastEvent(t *testing.T, store *eventstore.Store, stream string) eventstore.Recorded {
	t.Helper()
	recs, err := store.ReadStream(context.Background(), stream, 1)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read %s: %d events, %v", stream, len(recs), err)
	}
	return recs[len(recs)-1]
}

// The backfill embeds the listed texts a page to a request, and sets each
// embedding with an update by its actor at the version the text was listed
// at: a memory changed since and one deleted since are skipped, not
// overwritten or failed on; a message gets its embedding by an edit.
func TestBackfillEmbedsListedTextsAtTheirVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := eventstore.New(testdb.Pool(t, testdb.New(t)))
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	svc := commands.New(store, tc, logFinder{store}, time.Now)
	u, err := svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "bf", Name: "BF"})
	if err != nil {
		t.Fatal(err)
	}
	listed := listedTexts{}
	memory := func(content string) string {
		r, err := svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: content})
		if err != nil {
			t.Fatal(err)
		}
		listed[domain.StreamMemory] = append(listed[domain.StreamMemory], domain.TextToEmbed{ID: r.ID, Version: r.Version, Content: content})
		return r.ID
	}
	bees, jazz, changed, gone := memory("bees"), memory("jazz records"), memory("old hive"), memory("gone")
	newer := "new hive"
	if _, err := svc.UpdateMemory(ctx, testMeta, changed, nil, domain.UpdateMemory{Content: &newer}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DeleteMemory(ctx, testMeta, gone, nil); err != nil {
		t.Fatal(err)
	}
	sess, err := svc.StartSession(ctx, testMeta, u.ID, domain.StartSession{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := svc.AppendMessages(ctx, testMeta, sess.ID, []domain.NewMessage{{Role: "user", Content: "pollen"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := msgs.Messages[0].ID
	listed[domain.StreamMessage] = []domain.TextToEmbed{{ID: msg, Version: 1, Content: "pollen"}}

	b := commands.NewBackfiller(svc, listed)
	meta := commands.Meta{RequestID: "run", Actor: commands.BackfillActor, Scope: domain.Scope{Tenant: "default"}}
	if _, _, err := b.Backfill(ctx, meta, domain.StreamMemory, 2, nil); err == nil {
		t.Fatal("a backfill without a provider ran")
	}
	srv, batches := embeddingEndpoint(t)
	svc.SetEmbeddings(commands.Embeddings{Dim: 3, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Provider: embeddings.OpenAI{URL: srv.URL + "/v1", Model: "m", Client: srv.Client()}})

	if n, err := b.Missing(ctx, domain.StreamMemory); err != nil || n != 4 {
		t.Fatalf("missing memories: %d, %v", n, err)
	}
	var heard []int64
	done, skipped, err := b.Backfill(ctx, meta, domain.StreamMemory, 3, func(n int64) { heard = append(heard, n) })
	if err != nil || done != 2 || skipped != 2 {
		t.Fatalf("memories: %d done, %d skipped, %v; want 2 and 2", done, skipped, err)
	}
	if got := batches(); !slices.Equal(got, []int{3, 1}) {
		t.Errorf("texts per request: %v, want [3 1]", got)
	}
	if !slices.Equal(heard, []int64{1, 2, 3, 4}) {
		t.Errorf("progress heard: %v", heard)
	}
	for id, length := range map[string]float64{bees: 4, jazz: 12} {
		e := lastEvent(t, store, domain.StreamID(domain.StreamMemory, id))
		var d struct{ Embedding []float64 }
		if err := json.Unmarshal(e.Data, &d); err != nil || e.Version != 2 || e.Metadata.Actor != commands.BackfillActor ||
			e.Metadata.CorrelationID != "run" || !slices.Equal(d.Embedding, []float64{length, 1, 1}) {
			t.Errorf("memory %s: version %d by %q (%s), %s", id, e.Version, e.Metadata.Actor, e.Metadata.CorrelationID, e.Data)
		}
	}
	if e := lastEvent(t, store, domain.StreamID(domain.StreamMemory, changed)); e.Version != 2 || e.Metadata.Actor == commands.BackfillActor {
		t.Errorf("a memory changed since it was listed was overwritten: version %d by %q", e.Version, e.Metadata.Actor)
	}

	done, skipped, err = b.Backfill(ctx, meta, domain.StreamMessage, 3, nil)
	if err != nil || done != 1 || skipped != 0 {
		t.Fatalf("messages: %d done, %d skipped, %v; want 1 and 0", done, skipped, err)
	}
	e := lastEvent(t, store, domain.StreamID(domain.StreamMessage, msg))
	var d struct{ Embedding []float64 }
	if err := json.Unmarshal(e.Data, &d); err != nil || e.Type != domain.MessageEdited || e.Metadata.Actor != commands.BackfillActor ||
		!slices.Equal(d.Embedding, []float64{6, 1, 1}) {
		t.Errorf("message: %s by %q, %s", e.Type, e.Metadata.Actor, e.Data)
	}
	if _, _, err := b.Backfill(ctx, meta, domain.StreamSession, 3, nil); err == nil {
		t.Error("a backfill of sessions ran")
	}
}
