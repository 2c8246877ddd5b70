package ratelimit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/internal/redisclient"
)

// client is a fail-fast client of the Redis at url, closed when t ends.
func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	rdb, err := redisclient.New(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// exhaust sends burst requests, which go through, then one, which does
// not, and returns that one's result.
func exhaust(t *testing.T, l *Limiter, key string, lim Limit) Result {
	t.Helper()
	for i := range lim.Burst {
		if r := l.Allow(context.Background(), key, lim); !r.Allowed {
			t.Fatalf("request %d of the burst of %d refused: %+v", i+1, lim.Burst, r)
		}
	}
	r := l.Allow(context.Background(), key, lim)
	if r.Allowed || r.RetryAfter <= 0 || r.Remaining != 0 {
		t.Fatalf("request past the burst: %+v, want refused with a retry time", r)
	}
	return r
}

// The counts are in Redis: a second limiter (another instance) sees the
// first one's requests; another key has its own.
func TestSharedInRedis(t *testing.T) {
	ns := fmt.Sprintf("ratelimit-test-%d", time.Now().UnixNano())
	a, err := New(client(t, "redis://127.0.0.1:6379/0"), ns, quiet())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(client(t, "redis://127.0.0.1:6379/0"), ns, quiet())
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit{Rate: 1, Burst: 3}
	exhaust(t, a, "k", lim)
	if r := b.Allow(context.Background(), "k", lim); r.Allowed {
		t.Fatalf("the other instance let the key through: %+v", r)
	}
	if a.away() {
		t.Fatal("redis counted as down")
	}
	if r := b.Allow(context.Background(), "other", lim); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("another key: %+v, want allowed with 2 left", r)
	}
}

// With Redis unreachable the process holds the limit alone.
func TestLocalWhenRedisIsDown(t *testing.T) {
	l, err := New(client(t, "redis://127.0.0.1:1/0"), "ns", quiet())
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit{Rate: 1, Burst: 3}
	r := exhaust(t, l, "k", lim)
	if r.RetryAfter > time.Second {
		t.Fatalf("retry after %v, want at most a second at 1/s", r.RetryAfter)
	}
	if r := l.Allow(context.Background(), "other", lim); !r.Allowed {
		t.Fatalf("another key refused: %+v", r)
	}
	if r := l.Allow(context.Background(), "off", Limit{}); !r.Allowed {
		t.Fatalf("no limit refused: %+v", r)
	}
}
