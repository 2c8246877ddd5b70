package app

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The snapshotter's source leaves out the messages it is told to skip
// and serves those it is told to try last after all others, oldest first
// otherwise, so failing messages cannot fill its page.
func TestDueSnapshotsSkipAndLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := []string{"m1", "m2", "m3", "m4"} // oldest first
	for i, id := range ids {
		if _, err := pool.Exec(ctx, `INSERT INTO snapshots_due (message_id, session_id, user_id, seq, created_at) VALUES ($1, 's', 'u', $2, $3)`,
			id, i+1, at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	src := snapshotSource{r: readmodel.NewReader(pool)}
	for _, c := range []struct {
		limit      int
		skip, last []string
		want       []string
	}{
		{10, nil, nil, []string{"m1", "m2", "m3", "m4"}},
		{2, nil, nil, []string{"m1", "m2"}},
		{2, []string{"m1"}, []string{"m2"}, []string{"m3", "m4"}},
		{10, []string{"m3"}, []string{"m1", "m2"}, []string{"m4", "m1", "m2"}},
	} {
		due, err := src.DueSnapshots(ctx, c.limit, c.skip, c.last)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range due {
			got = append(got, d.MessageID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("limit %d, skip %v, last %v: got %v, want %v", c.limit, c.skip, c.last, got, c.want)
		}
	}
}
