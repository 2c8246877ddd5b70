package domain_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
)

func TestParseEmbedding(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		values []float64
		dim    int
		want   string // "" for valid, else a piece of the message
	}{
		{"any length", []float64{0.5, -1, 2}, 0, ""},
		{"the deployment's length", []float64{0.5, -1, 2}, 3, ""},
		{"empty", []float64{}, 0, "at least one"},
		{"wrong length", []float64{1, 2}, 3, "must have 3 dimensions, not 2"},
		{"NaN", []float64{1, math.NaN()}, 0, "finite"},
		{"infinite", []float64{math.Inf(1)}, 0, "finite"},
		{"beyond float32", []float64{1e39}, 0, "float32"},
		{"all zeros", []float64{0, 0, 0}, 0, "zeros"},
		{"too long", make([]float64, domain.MaxEmbeddingDim+1), 0, "more than"},
	} {
		e, err := domain.ParseEmbedding(c.values, c.dim)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == "" && !slices.Equal(e, []float32{0.5, -1, 2}):
			t.Errorf("%s: %v", c.name, e)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || fields(err)[0] != "embedding"):
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
}

// An embedding goes into the event and survives the log; a new content
// without a new embedding drops the old one, which no longer describes it.
func TestEmbeddingsOfMemoriesAndMessages(t *testing.T) {
	t.Parallel()
	u := registered(t)
	_, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "semantic", Content: "bees", Embedding: []float64{1, 0}, EmbeddingDim: 3}, words{}, now)
	if got := strings.Join(fields(err), ","); got != "embedding" {
		t.Fatalf("fields = %s", got)
	}
	evs, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "semantic", Content: "bees", Embedding: []float64{1, 0, 0}, EmbeddingDim: 3}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	m := &domain.Memory{}
	fold(t, m.Apply, evs)
	if !slices.Equal(m.Embedding(), []float32{1, 0, 0}) {
		t.Fatalf("embedding after the log: %v", m.Embedding())
	}
	if up, err := m.Update(domain.UpdateMemory{Embedding: []float64{1, 0, 0}, EmbeddingDim: 3}, words{}, now); err != nil || up != nil {
		t.Fatalf("same embedding again: %v %v", up, err)
	}
	content := "wasps"
	up, err := m.Update(domain.UpdateMemory{Content: &content}, words{}, now)
	if err != nil || !up[0].Data.(domain.MemoryUpdatedData).ClearEmbedding {
		t.Fatalf("new content: %+v %v", up, err)
	}
	fold(t, m.Apply, append(evs, up...))
	if m.Embedding() != nil {
		t.Fatalf("embedding of the old content kept: %v", m.Embedding())
	}

	evs, _, _ = domain.Start(u, domain.StartSession{SessionID: domain.NewID()}, now)
	s := &domain.Session{}
	fold(t, s.Apply, evs)
	_, err = domain.AppendMessages(s, []domain.NewMessage{
		{MessageID: domain.NewID(), Role: "user", Content: "ok", Embedding: []float64{1, 2}, EmbeddingDim: 2},
		{MessageID: domain.NewID(), Role: "user", Content: "ok", Embedding: []float64{}, EmbeddingDim: 2},
	}, words{}, now)
	if got := strings.Join(fields(err), ","); got != "messages[1].embedding" {
		t.Fatalf("fields = %s", got)
	}
	out, err := domain.AppendMessages(s, []domain.NewMessage{{MessageID: domain.NewID(), Role: "user", Content: "hi", Embedding: []float64{1, 2}}}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	msg := &domain.Message{}
	fold(t, msg.Apply, out)
	ed, err := msg.Edit(domain.EditMessage{Metadata: map[string]any{"k": "v"}}, words{})
	if err != nil || !slices.Equal(ed[0].Data.(domain.MessageEditedData).Embedding, []float32{1, 2}) {
		t.Fatalf("metadata edit keeps the embedding: %+v %v", ed, err)
	}
	ed, err = msg.Edit(domain.EditMessage{Content: &content}, words{})
	if err != nil || ed[0].Data.(domain.MessageEditedData).Embedding != nil {
		t.Fatalf("content edit drops the embedding: %+v %v", ed, err)
	}
}
