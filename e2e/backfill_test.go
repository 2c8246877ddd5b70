package e2e

import (
	"context"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/internal/testdb"
)

// backfillActor is the actor of the events `arq embeddings backfill`
// records.
const backfillActor = "arq embeddings backfill"

// Memories and messages stored before a provider was configured get an
// embedding from `arq embeddings backfill`, as update events by the
// backfill's actor; deleted and expired ones and texts that already have
// one are left alone, and a second run finds nothing to do.
func TestEmbeddingsBackfill(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_EMBEDDING_DIM": "3"}) // no provider
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bf", "name": "BF"})).Str("id")
	bees := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "bees make honey"})).Str("id")
	jazz := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "jazz records"})).Str("id")
	given := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "given", "embedding": []float64{9, 9, 9}})).Str("id")
	gone := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "deleted hive"})).Str("id")
	s.Must(204, s.Do("DELETE", "/v1/memories/"+gone, nil))
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "tell me about pollen"})).Str("id")

	provider := fakeEmbeddings(t, nil, new(atomic.Int64))
	env := providerEnv(provider.URL)
	env["ARQ_DATABASE_URL"] = s.URL
	backfill := func() (int, string, string) {
		return runCLIWith(t, env, "embeddings", "backfill", "--quiet", "--batch", "2")
	}
	code, out, errOut := backfill()
	if code != 0 || !strings.Contains(out, "memories: 2 embedded, 0 skipped") || !strings.Contains(out, "messages: 1 embedded, 0 skipped") {
		t.Fatalf("backfill: exit %d\n%s%s", code, out, errOut)
	}

	pool := testdb.Pool(t, s.URL)
	testwait.Eventually(t, 10*time.Second, "embeddings in the query tables", func() (bool, error) {
		var missing int
		err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM memories WHERE embedding IS NULL) + (SELECT count(*) FROM messages WHERE embedding IS NULL)`).Scan(&missing)
		return missing == 0, err
	})
	var bee, jz, kept []float64
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT embedding::float8[] FROM memories WHERE id = $1), (SELECT embedding::float8[] FROM memories WHERE id = $2),
		(SELECT embedding::float8[] FROM memories WHERE id = $3)`, bees, jazz, given).Scan(&bee, &jz, &kept); err != nil {
		t.Fatal(err)
	}
	if bee[0] != 2 || bee[1] != 0 || jz[0] != 0 || jz[1] != 2 || kept[0] != 9 {
		t.Fatalf("embeddings: bees %v, jazz %v, given %v", bee, jz, kept)
	}
	last := s.Must(200, s.Do("GET", "/v1/memories/"+bees+"/history", nil)).Items()
	if n := len(last); n != 2 || last[1]["actor"] != commands.BackfillActor {
		t.Fatalf("history of a backfilled memory: %v", last)
	}
	if h := s.Must(200, s.Do("GET", "/v1/messages/"+msg+"/history", nil)).Items(); len(h) != 2 || h[1]["actor"] != commands.BackfillActor {
		t.Fatalf("history of a backfilled message: %v", h)
	}

	code, out, _ = backfill()
	if code != 0 || !strings.Contains(out, "memories: 0 embedded") || !strings.Contains(out, "messages: 0 embedded") {
		t.Fatalf("second backfill: exit %d\n%s", code, out)
	}
	code, _, errOut = runCLI(t, s.URL, "embeddings", "backfill")
	if code != 2 || !strings.Contains(errOut, "ARQ_EMBEDDINGS_URL") {
		t.Fatalf("without a provider: exit %d, %s", code, errOut)
	}
}
