package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable marks the errors of a database that could not be reached,
// and no other.
func TestUnreachableMarksConnectionFailuresOnly(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("acquire: %w", refused), true},
		{"connection reset", fmt.Errorf("query: %w", syscall.ECONNRESET), true},
		{"lost mid-answer", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{"admin_shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot_connect_now", fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"the request's deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"canceled", context.Canceled, false},
		{"outcome unknown", fmt.Errorf("%w: %w", ErrOutcomeUnknown, io.ErrUnexpectedEOF), false},
		{"another error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Unreachable(tc.err)
			if errors.Is(got, ErrUnavailable) != tc.want || !errors.Is(got, tc.err) {
				t.Fatalf("Unreachable(%v) = %v: marked %v, want %v, keeping the error", tc.err, got, !tc.want, tc.want)
			}
		})
	}
}
