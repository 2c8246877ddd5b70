package eventstore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotEmpty refuses an import into a log that holds events already,
// unless the caller forces it.
var ErrNotEmpty = errors.New("the event log is not empty; import into an empty database, or pass --force to add to it")

// WriteNDJSON writes the log's events recorded at or after since (zero:
// all) to w as NDJSON, one Exported event a line, in commit-safe order;
// progress, if not nil, hears the count now and then and at the end.
func (s *Store) WriteNDJSON(ctx context.Context, w io.Writer, since time.Time, progress func(n int64)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	var n int64
	err := s.Export(ctx, since, func(e Exported) error {
		n++
		if progress != nil && n%1000 == 0 {
			progress(n)
		}
		return enc.Encode(e)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if progress != nil {
		progress(n)
	}
	return nil
}

// ReadNDJSON imports an exported log from r (see WriteNDJSON) into this
// one, in transactions of 1,000 events, and returns how many it imported.
// Without force it refuses a log that holds events (ErrNotEmpty).
// progress, if not nil, hears the count after each transaction.
func (s *Store) ReadNDJSON(ctx context.Context, r io.Reader, force bool, progress func(n int64)) (int64, error) {
	if empty, err := s.Empty(ctx); err != nil {
		return 0, err
	} else if !empty && !force {
		return 0, ErrNotEmpty
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var batch []Exported
	var n int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.Import(ctx, batch); err != nil {
			return fmt.Errorf("after %d events: %w", n-int64(len(batch)), err)
		}
		batch = batch[:0]
		if progress != nil {
			progress(n)
		}
		return nil
	}
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return n, fmt.Errorf("line %d: not an exported event: %w", line, err)
		}
		batch = append(batch, e)
		n++
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("read the exported log: %w", err)
	}
	return n, flush()
}
