package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The server's eraser drops an erased user's embeddings from the memory
// of its process, beside Redis's entries, and keeps other users'.
func TestEraserForgetsTheVectorsKeptInMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `
		INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version, created_at, updated_at, embedding, stored_tx, stored_position)
		VALUES ('m1', 'erased', 't', 'semantic', 'one', 0.5, '{}', '{}', 1, 1, now(), now(), '{1,0,0}', '1', 1),
		       ('m2', 'kept', 't', 'semantic', 'two', 0.5, '{}', '{}', 1, 1, now(), now(), '{0,1,0}', '1', 2);
		INSERT INTO cache_generations (key, gen) VALUES ('user:erased', 1), ('user:kept', 1)`); err != nil {
		t.Fatal(err)
	}
	vectors, err := readmodel.NewVectorCache(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer vectors.Close()
	r := readmodel.NewReader(pool, readmodel.CacheVectorsIn(vectors))
	for _, u := range []string{"erased", "kept"} {
		if _, err := r.SearchMemories(ctx, u, "", []float32{1, 1, 0}, readmodel.MemoryFilter{}, 5); err != nil {
			t.Fatal(err)
		}
		if !vectors.Holds(u) {
			t.Fatalf("nothing kept of %s", u)
		}
	}
	c, err := cache.New(DefaultConfig().RedisURL, 0, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	f := forgetters{cache.NewForgetter(c, "test-"+t.Name()), vectors}
	if err := f.ForgetErased(ctx, commands.Erased{Users: []string{"erased"}}); err != nil {
		t.Fatal(err)
	}
	if vectors.Holds("erased") || !vectors.Holds("kept") {
		t.Fatalf("after the erasure: holds the erased user's %v, the other's %v", vectors.Holds("erased"), vectors.Holds("kept"))
	}
}
