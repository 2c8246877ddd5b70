package eventstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a place in the log's commit-safe order: the id of the
// transaction that wrote an event, then the event's position.
//
// Positions are handed out when a transaction inserts, not when it commits,
// so a reader that tracked positions alone would skip an event whose
// transaction took its position early and committed late. Ordering by
// transaction id first, and reading only below the oldest transaction still
// running (pg_snapshot_xmin), gives an order in which nothing can appear
// behind a reader. The cursor is therefore always the pair.
type Cursor struct {
	TransactionID uint64
	Position      int64
}

// Start is the cursor before the first event.
var Start = Cursor{}

// ErrBadCursor is returned for a cursor string that does not parse.
var ErrBadCursor = errors.New("bad cursor")

// String renders the cursor as "<transaction id>.<position>", the form
// ParseCursor reads and clients pass back.
func (c Cursor) String() string {
	return strconv.FormatUint(c.TransactionID, 10) + "." + strconv.FormatInt(c.Position, 10)
}

// Less reports whether c comes before d in the log.
func (c Cursor) Less(d Cursor) bool {
	if c.TransactionID != d.TransactionID {
		return c.TransactionID < d.TransactionID
	}
	return c.Position < d.Position
}

// IsZero reports whether c is Start.
func (c Cursor) IsZero() bool { return c == Start }

// ParseCursor reads a cursor written by Cursor.String; "" is Start.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Start, nil
	}
	tx, pos, ok := strings.Cut(s, ".")
	if !ok {
		return Cursor{}, fmt.Errorf("%w %q: want <transaction id>.<position>", ErrBadCursor, s)
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w %q: transaction id must be a whole number", ErrBadCursor, s)
	}
	p, err := strconv.ParseInt(pos, 10, 64)
	if err != nil || p < 0 {
		return Cursor{}, fmt.Errorf("%w %q: position must be a whole number", ErrBadCursor, s)
	}
	return Cursor{TransactionID: t, Position: p}, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
