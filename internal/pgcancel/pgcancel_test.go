package pgcancel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/internal/pgcancel"
)

func adminURL() string { return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" }

// A statement whose context ends is cancelled in Postgres, and its
// connection, which sent the cancel request, is never handed out again:
// a late cancel cannot reach another caller's statement.
func TestCancelledConnectionIsNotReused(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(adminURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pgcancel.OnServerPool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Postgres is unreachable at %s: %v", adminURL(), err)
	}
	defer pool.Close()
	pid := func() int {
		var p int
		if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := pid()
	if again := pid(); again != before {
		t.Fatalf("an uncancelled connection was not reused: %d then %d", before, again)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = pool.Exec(ctx, `SELECT pg_sleep(10)`)
	var pgErr *pgconn.PgError
	if err == nil || (!errors.As(err, &pgErr) && !errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("statement past its context: %v, want cancelled", err)
	}
	if after := pid(); after == before {
		t.Fatalf("the connection that sent a cancel request (backend %d) was handed out again", before)
	}
}
