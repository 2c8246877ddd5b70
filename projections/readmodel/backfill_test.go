package readmodel

import (
	"context"
	"slices"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
)

// The backfill's list holds the memories and messages without an
// embedding that have a text, memories only until they expire, in id
// order a page at a time, each at its version.
func TestMissingEmbeddingsListsLiveTextsWithoutOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `
		INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version, created_at, updated_at, expires_at, embedding, stored_tx, stored_position)
		VALUES ('a', 'u', 't', 'semantic', 'one', 0.5, '{}', '{}', 1, 1, now(), now(), NULL, NULL, '1', 1),
		       ('b', 'u', 't', 'semantic', 'has one', 0.5, '{}', '{}', 1, 1, now(), now(), NULL, '{1,2,3}', '1', 1),
		       ('c', 'u', 't', 'semantic', '', 0.5, '{}', '{}', 1, 1, now(), now(), NULL, NULL, '1', 1),
		       ('d', 'u', 't', 'semantic', 'expired', 0.5, '{}', '{}', 1, 1, now(), now(), now() - interval '1 minute', NULL, '1', 1),
		       ('e', 'u', 't', 'semantic', 'expires later', 0.5, '{}', '{}', 1, 3, now(), now(), now() + interval '1 hour', NULL, '1', 1),
		       ('f', 'u', 't', 'semantic', 'two', 0.5, '{}', '{}', 1, 2, now(), now(), NULL, NULL, '1', 1);
		INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at, embedding)
		VALUES ('m1', 's', 'u', 't', 1, 'user', 'hello', '', '{}', 1, 2, now(), now(), NULL),
		       ('m2', 's', 'u', 't', 2, 'user', 'has one', '', '{}', 1, 1, now(), now(), '{1,2,3}'),
		       ('m3', 's', 'u', 't', 3, 'user', '', '', '{}', 1, 1, now(), now(), NULL)`); err != nil {
		t.Fatal(err)
	}
	m := NewReader(pool).MissingEmbeddings()
	for _, c := range []struct {
		kind  string
		count int64
		pages [][]domain.TextToEmbed
	}{
		{domain.StreamMemory, 3, [][]domain.TextToEmbed{
			{{ID: "a", Version: 1, Content: "one"}, {ID: "e", Version: 3, Content: "expires later"}},
			{{ID: "f", Version: 2, Content: "two"}},
			nil,
		}},
		{domain.StreamMessage, 1, [][]domain.TextToEmbed{{{ID: "m1", Version: 2, Content: "hello"}}, nil}},
	} {
		if n, err := m.Count(ctx, c.kind); err != nil || n != c.count {
			t.Errorf("%s: count %d (%v), want %d", c.kind, n, err, c.count)
		}
		after := ""
		for i, want := range c.pages {
			got, err := m.Page(ctx, c.kind, after, 2)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("%s: page %d after %q: %v (%v), want %v", c.kind, i, after, got, err, want)
			}
			if len(got) > 0 {
				after = got[len(got)-1].ID
			}
		}
	}
	if _, err := m.Count(ctx, domain.StreamSession); err == nil {
		t.Error("sessions were counted as texts to embed")
	}
	if _, err := m.Page(ctx, domain.StreamSession, "", 2); err == nil {
		t.Error("sessions were listed as texts to embed")
	}
}
