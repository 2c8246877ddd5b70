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

// A caller's limit may change between its requests (a tenant's limits are
// set at any time): with Redis unreachable its bucket takes the new limit
// from its next request, keeping what it held.
func TestLocalLimitChangeTakesHold(t *testing.T) {
	l, err := New(client(t, "redis://127.0.0.1:1/0"), "ns", quiet())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if r := l.allowLocal("k", Limit{Rate: 1000, Burst: 1000}, now); !r.Allowed || r.Remaining != 999 {
		t.Fatalf("first request: %+v", r)
	}
	strict := Limit{Rate: 1, Burst: 3}
	for i := range 3 {
		if r := l.allowLocal("k", strict, now); !r.Allowed || r.Remaining != 2-i {
			t.Fatalf("request %d within the lowered burst: %+v", i+1, r)
		}
	}
	if r := l.allowLocal("k", strict, now); r.Allowed {
		t.Fatalf("a request over the lowered burst: %+v", r)
	}
	// Raised again: the time until then counts at the lower rate, the
	// time after at the new one.
	raised := Limit{Rate: 1000, Burst: 1000}
	if r := l.allowLocal("k", raised, now.Add(100*time.Millisecond)); r.Allowed {
		t.Fatalf("a request with a tenth of a token: %+v", r)
	}
	if r := l.allowLocal("k", raised, now.Add(200*time.Millisecond)); !r.Allowed || r.Remaining != 99 {
		t.Fatalf("a request 100ms into the raised limit: %+v, want allowed with 99 left", r)
	}
}
