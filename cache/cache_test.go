package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// An entry one process writes reaches another through Redis, which then
// keeps it in memory: served with Redis away, and no longer than Redis
// would have kept it.
func TestEntriesInMemoryFollowRedis(t *testing.T) {
	ctx := context.Background()
	a, b := newTestCache(t, 1<<20), newTestCache(t, 1<<20)
	key := fmt.Sprintf("arq:test-%d:mem", time.Now().UnixNano())
	t.Cleanup(func() { a.rdb.Del(context.Background(), key) })

	const ttl = 300 * time.Millisecond
	a.Set(ctx, key, []byte("window"), ttl)
	set := time.Now()
	if v, ok := b.Get(ctx, key); !ok || string(v) != "window" {
		t.Fatalf("other process read %q %v, want the entry from Redis", v, ok)
	}
	if err := a.rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Cache{a, b} {
		if v, ok := c.Get(ctx, key); !ok || string(v) != "window" {
			t.Fatalf("read from memory %q %v, want the entry", v, ok)
		}
	}
	// Redis counts whole milliseconds and the memory cache reads a clock
	// of its own: allow a little past the time to live.
	time.Sleep(time.Until(set.Add(ttl + 20*time.Millisecond)))
	for _, c := range []*Cache{a, b} {
		if v, ok := c.Get(ctx, key); ok {
			t.Fatalf("entry %q served from memory past its time to live", v)
		}
	}
}

// Without memory the cache is Redis alone.
func TestNoMemoryLayer(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, 0)
	key := fmt.Sprintf("arq:test-%d:nomem", time.Now().UnixNano())
	c.Set(ctx, key, []byte("x"), time.Minute)
	if v, ok := c.Get(ctx, key); !ok || string(v) != "x" {
		t.Fatalf("read %q %v", v, ok)
	}
	if err := c.rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(ctx, key); ok {
		t.Fatal("an entry deleted from Redis was served")
	}
}
