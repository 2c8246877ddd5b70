package projections_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/projections"
)

// checkpointReads counts the statements that read projection checkpoints.
type checkpointReads struct{ n atomic.Int64 }

func (c *checkpointReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "projection_checkpoints") {
		c.n.Add(1)
	}
	return ctx
}

func (c *checkpointReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Many requests waiting at once for projections that run in another
// process (no local signal) share the checkpoint reads: about one a poll,
// not one a poll per waiter, and every waiter still returns once the
// position is reached.
func TestWaitersShareCheckpointReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	release, _, res := e.gatedSlowpoke(t)
	cfg := e.pool.Config()
	reads := &checkpointReads{}
	cfg.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := projections.NewWaiter(pool, []string{"streams", "slowpoke"}, nil) // as in a process without projections

	const waiters = 40
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, stop := context.WithTimeout(ctx, 20*time.Second)
			defer stop()
			errs <- w.Wait(wctx, res.Last().Cursor)
		}()
	}
	// The waiters poll while slowpoke holds the event, then see it applied.
	time.AfterFunc(300*time.Millisecond, func() { close(release) })
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	if elapsed < 300*time.Millisecond {
		t.Fatalf("waiters returned after %v, before the event was applied", elapsed)
	}
	// One read per 5 ms poll at most, and a few over for timing; a read
	// per waiter per poll would be 40 times as many.
	if n, most := reads.n.Load(), int64(elapsed/(5*time.Millisecond))+10; n > most {
		t.Fatalf("%d waiters read the checkpoints %d times in %v, want at most %d", waiters, n, elapsed, most)
	}
}
