package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable marks an error that says the database could not be
// reached: a connection refused, reset or lost, a connect that failed (the
// pool's acquire included), or the server shutting down or not accepting
// connections yet. It says nothing of the request itself: the same request
// may well succeed once the database is back (the API answers 503 with
// Retry-After). Unreachable marks an error with it.
var ErrUnavailable = errors.New("the database is unavailable")

// Unreachable returns err marked with ErrUnavailable (errors.Is matches
// it, and err's own chain is kept) when err says the database could not
// be reached, else err as it is. An error already marked, or one of an
// append whose outcome is unknown (ErrOutcomeUnknown, which says more),
// is returned as it is.
func Unreachable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) || !unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// unreachable tells whether err is a failure to reach the database rather
// than an answer of the database to the statement.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02",                          // crash_shutdown
			pgErr.Code == "57P03",                          // cannot_connect_now
			len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	// A deadline or a cancel of the request's own (context.DeadlineExceeded
	// is a net.Error too) is no outage.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		pgconn.SafeToRetry(err)
}
