package migrations_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/migrations"
)

// Processes started together on a database that does not exist yet all
// go on: one creates it, the others find it made.
func TestEnsureDatabaseRacing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := fmt.Sprintf("arq_ensure_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if admin, err := pgx.Connect(ctx, testdb.AdminURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = admin.Close(ctx)
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- migrations.EnsureDatabase(ctx, testdb.URLFor(name))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
