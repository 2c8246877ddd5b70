package cache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
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

// brokenRedis accepts connections and closes them at once, counting them:
// a Redis that is there and fails every call.
func brokenRedis(t *testing.T) (url string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			_ = c.Close()
		}
	}()
	return "redis://" + ln.Addr().String() + "/0", conns
}

// After Redis failed, the cache leaves it alone for a while: the calls
// miss at once instead of each waiting on Redis again; then one call
// tries it.
func TestUnreachableRedisIsLeftAlone(t *testing.T) {
	ctx := context.Background()
	url, conns := brokenRedis(t)
	c, err := New(url, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.retry = time.Hour
	if _, ok := c.Get(ctx, "k"); ok {
		t.Fatal("a hit from a broken Redis")
	}
	tried := conns.Load()
	if tried == 0 {
		t.Fatal("the first call did not try Redis")
	}
	for range 50 {
		c.Set(ctx, "k", []byte("v"), time.Minute)
		if _, ok := c.Get(ctx, "k"); ok {
			t.Fatal("a hit from a broken Redis")
		}
	}
	if n := conns.Load(); n != tried {
		t.Fatalf("100 calls after the failure made %d connections to Redis, want none", n-tried)
	}

	// Past the wait, a call tries Redis again.
	c.mu.Lock()
	c.downUntil = time.Now()
	c.mu.Unlock()
	c.Get(ctx, "k")
	if conns.Load() == tried {
		t.Fatal("no call tried Redis again after the wait")
	}
}
