package readmodel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
)

// The expirer's due lists leave out the entities it is told to skip and
// serve those it is told to try last after all others, by expiry time
// otherwise, so entities it keeps failing on cannot fill its page; what is
// not due yet, and sessions no longer open, are not listed.
func TestExpiredSkipAndLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"x1", "x2", "x3", "x4", "later"} { // by expiry time
		at := now.Add(time.Duration(i-4) * time.Minute)
		if id == "later" {
			at = now.Add(time.Minute)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version, created_at, updated_at, expires_at, stored_tx, stored_position)
			VALUES ($1, 'u', 't', 'semantic', 'x', 0.5, '{}', '{}', 1, 1, $2, $2, $3, '1', 1)`, id, now.Add(-time.Hour), at); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, version, created_at, updated_at, expires_at)
			VALUES ($1, 'u', 't', '', '{}', $1, 'open', 1, $2, $2, $3)`, id, now.Add(-time.Hour), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE sessions SET status = 'closed' WHERE id = 'x2'`); err != nil {
		t.Fatal(err)
	}
	r := NewReader(pool)
	for _, c := range []struct {
		limit              int
		skip, last         []string
		memories, sessions []string
	}{
		{10, nil, nil, []string{"x1", "x2", "x3", "x4"}, []string{"x1", "x3", "x4"}},
		{2, nil, nil, []string{"x1", "x2"}, []string{"x1", "x3"}},
		{2, []string{"x1"}, []string{"x2"}, []string{"x3", "x4"}, []string{"x3", "x4"}},
		{10, []string{"x3"}, []string{"x1", "x2"}, []string{"x4", "x1", "x2"}, []string{"x4", "x1"}},
		{10, []string{"x1", "x2", "x3", "x4"}, nil, nil, nil},
	} {
		for _, kind := range []struct {
			what string
			list func(context.Context, time.Time, int, []string, []string) ([]ExpiryDue, error)
			want []string
		}{{"memories", r.ExpiredMemories, c.memories}, {"sessions", r.ExpiredSessions, c.sessions}} {
			due, err := kind.list(ctx, now, c.limit, c.skip, c.last)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range due {
				got = append(got, d.ID)
			}
			if !slices.Equal(got, kind.want) {
				t.Errorf("%s, limit %d, skip %v, last %v: got %v, want %v", kind.what, c.limit, c.skip, c.last, got, kind.want)
			}
		}
	}
}
