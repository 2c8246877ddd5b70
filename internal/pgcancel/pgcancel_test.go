package pgcancel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// The pool gives a connection back inline: with an AfterRelease hook pgx
// gives every connection back from a goroutine of its own, one per
// statement, which cost measurable CPU per request. A PrepareConn the
// caller set is still asked, after the check of OnServerPool.
func TestReleaseIsInlineAndPrepareConnKept(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(adminURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	var asked atomic.Int32
	cfg.PrepareConn = func(context.Context, *pgx.Conn) (bool, error) {
		asked.Add(1)
		return true, nil
	}
	pgcancel.OnServerPool(cfg)
	if cfg.AfterRelease != nil {
		t.Fatal("OnServerPool set AfterRelease: every release would start a goroutine")
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Postgres is unreachable at %s: %v", adminURL(), err)
	}
	defer pool.Close()
	for range 3 {
		if _, err := pool.Exec(context.Background(), `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	if n := asked.Load(); n != 3 {
		t.Fatalf("the caller's PrepareConn was asked %d times for 3 statements, want 3", n)
	}
}
