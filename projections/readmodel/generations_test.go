package readmodel

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/internal/testdb"
)

// A unit of writes that changes several sessions and users moves every
// one of their generations, each once, in one statement; a key moved
// before moves on.
func TestGenerationBumpsMoveEveryKeyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `INSERT INTO cache_generations (key, gen) VALUES ('user:u', 5)`); err != nil {
		t.Fatal(err)
	}
	b := newGenerationBumps().(*generationBumps)
	for _, k := range []string{"session:b", "session:a", "user:u", "session:b"} {
		b.add(k)
	}
	var batch pgx.Batch
	b.Flush(func(sql string, args ...any) { batch.Queue(sql, args...) })
	b.add("session:a") // moved already in this unit
	b.Flush(func(sql string, args ...any) { batch.Queue(sql, args...) })
	if batch.Len() != 1 {
		t.Fatalf("%d statements, want 1", batch.Len())
	}
	if err := pool.SendBatch(ctx, &batch).Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"session:a": 1, "session:b": 1, "user:u": 6}
	rows, err := pool.Query(ctx, `SELECT key, gen FROM cache_generations`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var k string
		var g int64
		if err := rows.Scan(&k, &g); err != nil {
			t.Fatal(err)
		}
		got[k] = g
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(got) != len(want) {
		t.Fatalf("generations %v, want %v", got, want)
	}
	for k, g := range want {
		if got[k] != g {
			t.Fatalf("generations %v, want %v", got, want)
		}
	}
}
