// Package pgcancel makes pgx cancel a statement in Postgres, not only on
// the client, when its context ends.
package pgcancel

import (
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// OnServer makes a statement of a connection built from cfg be cancelled
// in Postgres when its context ends. By default pgx only stops waiting:
// Postgres goes on, and an append waiting for a stream's lock then
// commits after its caller was told it failed or was cut short (see
// eventstore.AppendLimit). Every pool a Store appends through needs it;
// reads gain too, as Postgres stops the work no one waits for.
func OnServer(cfg *pgconn.Config) {
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		// The cancel request goes at once; the client gives the server
		// deadlineDelay to answer it, then stops waiting (an idle
		// connection, such as a LISTEN, never answers).
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: deadlineDelay}
	}
}

// deadlineDelay is how long a client waits for Postgres to answer a cancel
// request before it drops the connection.
const deadlineDelay = 250 * time.Millisecond
