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
// progress, if not nil, hears the count now and then and at the end. On an
// export of the whole log, checkpoints, if not nil, lists the log's signed
// checkpoints, and the event that ends each one carries it: leaf i of the
// log's tree is the i-th event of the file. An export since a time carries
// none, as its first event is not the tree's first leaf.
func (s *Store) WriteNDJSON(ctx context.Context, w io.Writer, since time.Time, checkpoints CheckpointPager, progress func(n int64)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	carry := &carried{page: checkpoints, done: checkpoints == nil || !since.IsZero()}
	var n int64
	err := s.Export(ctx, since, func(e Exported) error {
		n++
		if progress != nil && n%1000 == 0 {
			progress(n)
		}
		note, err := carry.at(ctx, n)
		if err != nil {
			return err
		}
		e.Checkpoint = note
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

// carried hands out the checkpoints an export carries, a page at a time.
type carried struct {
	page  CheckpointPager
	queue []SignedCheckpoint
	after int64
	done  bool
}

// at is the note of the checkpoint of n events, or "" when none was
// signed at that size; n grows from one call to the next.
func (c *carried) at(ctx context.Context, n int64) (string, error) {
	for {
		for len(c.queue) > 0 && c.queue[0].Size < n {
			c.queue = c.queue[1:]
		}
		if len(c.queue) > 0 {
			if c.queue[0].Size != n {
				return "", nil
			}
			note := c.queue[0].Note
			c.queue = c.queue[1:]
			return note, nil
		}
		if c.done {
			return "", nil
		}
		const limit = 1000
		page, err := c.page(ctx, c.after, limit)
		if err != nil {
			return "", fmt.Errorf("the log's checkpoints: %w", err)
		}
		c.done = len(page) < limit
		if len(page) > 0 {
			c.after = page[len(page)-1].Size
		}
		c.queue = page
	}
}
