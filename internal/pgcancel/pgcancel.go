// Package pgcancel makes pgx cancel a statement in Postgres, not only on
// the client, when its context ends.
package pgcancel

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// deadlineDelay is how long a client waits for Postgres to answer a cancel
// request before it drops the connection.
const deadlineDelay = 250 * time.Millisecond

// OnServerPool makes a statement of a connection of the pool cfg builds
// be cancelled in Postgres when its context ends. By default pgx only
// stops waiting: Postgres goes on, and an append waiting for a stream's
// lock then commits after its caller was told it failed or was cut short
// (see eventstore.AppendLimit). Every pool a Store appends through needs
// it; reads gain too, as Postgres stops the work no one waits for. The
// client gives the server deadlineDelay to answer a cancel request, then
// stops waiting (an idle connection, such as a LISTEN, never answers).
//
// The pool also never hands out again a connection that sent a cancel
// request. Postgres acts on a cancel request
// when it arrives, whatever the connection runs then: a statement that
// ended just before its cancel came would leave the cancel to the next
// statement sent on that connection, some other caller's (a rebuild's
// CREATE INDEX was cancelled so). The connection is closed instead, when
// the pool would next hand it out (or check it while idle).
//
// That check is made as a connection is taken (PrepareConn), not as it is
// given back: a pool with an AfterRelease hook gives every connection back
// from a goroutine of its own, one per statement, which cost the server
// some 0.1 ms of CPU per request in scheduling alone (BENCHMARKS.md,
// "Tenants and rate limits, against the code before them").
func OnServerPool(cfg *pgxpool.Config) {
	var sent sync.Map // *pgconn.PgConn that sent a cancel request → struct{}
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &marking{
			CancelRequestContextWatcherHandler: &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: deadlineDelay},
			mark:                               func() { sent.Store(c, struct{}{}) },
		}
	}
	prepare, beforeClose := cfg.PrepareConn, cfg.BeforeClose
	if prepare == nil && cfg.BeforeAcquire != nil {
		before := cfg.BeforeAcquire
		prepare = func(ctx context.Context, c *pgx.Conn) (bool, error) { return before(ctx, c), nil }
	}
	// false, nil: the pool closes the connection and takes another.
	cfg.PrepareConn = func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if _, ok := sent.Load(c.PgConn()); ok {
			return false, nil
		}
		if prepare == nil {
			return true, nil
		}
		return prepare(ctx, c)
	}
	cfg.BeforeClose = func(c *pgx.Conn) {
		sent.Delete(c.PgConn())
		if beforeClose != nil {
			beforeClose(c)
		}
	}
}

// marking is pgx's cancel-request handler, which marks its connection
// when it sends one.
type marking struct {
	*pgconn.CancelRequestContextWatcherHandler
	mark func()
}

func (m *marking) HandleCancel(ctx context.Context) {
	m.mark()
	m.CancelRequestContextWatcherHandler.HandleCancel(ctx)
}
