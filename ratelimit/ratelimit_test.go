package ratelimit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/internal/redisclient"
)

// client is a fail-fast client of the Redis at url, closed when t ends.
func client(t testing.TB, url string) *redis.Client {
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

// Two instances spending slices of one caller's limit let through, all
// told, what the limit allows over the time taken: the burst and what
// refilled, not a slice more.
func TestSlicesShareTheLimitExactly(t *testing.T) {
	ns := fmt.Sprintf("ratelimit-test-%d", time.Now().UnixNano())
	a, err := New(client(t, "redis://127.0.0.1:6379/0"), ns, quiet())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(client(t, "redis://127.0.0.1:6379/0"), ns, quiet())
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit{Rate: 100, Burst: 1000} // slices of 10
	start := time.Now()
	allowed := 0
	for refusedA, refusedB := false, false; !refusedA || !refusedB; {
		for _, l := range []*Limiter{a, b} {
			r := l.Allow(context.Background(), "k", lim)
			if !r.Allowed {
				refusedA, refusedB = refusedA || l == a, refusedB || l == b
				continue
			}
			allowed++
		}
		if allowed > 2000 {
			t.Fatal("2000 requests let through a burst of 1000")
		}
	}
	refilled := int(time.Since(start).Seconds()*float64(lim.Rate)) + 1
	if allowed < lim.Burst || allowed > lim.Burst+refilled {
		t.Fatalf("%d let through in %v, want the burst of %d and at most %d refilled", allowed, time.Since(start), lim.Burst, refilled)
	}
}

// A caller whose limit changes (a tenant's limits were set) is counted
// under the new one from its next request: what its process had taken
// under the old one is dropped.
func TestALimitChangeDropsTheSlice(t *testing.T) {
	l, err := New(client(t, "redis://127.0.0.1:6379/0"), fmt.Sprintf("ratelimit-test-%d", time.Now().UnixNano()), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if r := l.Allow(context.Background(), "k", Limit{Rate: 1000, Burst: 1000}); !r.Allowed || r.Remaining != 999 {
		t.Fatalf("first request: %+v, want 999 left", r)
	}
	strict := Limit{Rate: 1, Burst: 3}
	for i := range 4 {
		if r := l.Allow(context.Background(), "k", strict); !r.Allowed {
			if i == 0 {
				t.Fatalf("the first request under the strict limit refused: %+v", r)
			}
			return
		}
	}
	t.Fatal("4 requests let through under a burst of 3, after 1 under a limit before it")
}

// take is a stand-in for Redis's answer in the lease's own tests: it
// grants up to have, else refuses for wait, and counts its calls.
type take struct {
	have  int
	wait  time.Duration
	calls int
}

func (f *take) take(n int) (*redis_rate.Result, error) {
	f.calls++
	got := min(n, f.have)
	f.have -= got
	if got == 0 {
		return &redis_rate.Result{RetryAfter: f.wait, ResetAfter: 2 * f.wait}, nil
	}
	return &redis_rate.Result{Allowed: got, Remaining: f.have, ResetAfter: time.Second}, nil
}

// A lease is spent without asking again, lapses after leaseLife, and a
// refusal holds, unasked, until the retry time Redis gave.
func TestLeaseSpendsLapsesAndRemembersRefusal(t *testing.T) {
	lim := Limit{Rate: 100, Burst: 100} // slices of 10
	f := &take{have: 15, wait: 500 * time.Millisecond}
	var ls lease
	now := time.Now()
	for i := range 3 {
		r, err := ls.allow(now, lim, f.take)
		if err != nil || !r.Allowed || r.Remaining != 5+9-i {
			t.Fatalf("request %d: %+v %v, want allowed with %d left", i+1, r, err, 5+9-i)
		}
	}
	if f.calls != 1 {
		t.Fatalf("%d calls to Redis for 3 requests of one slice", f.calls)
	}
	// Lapsed: the 7 not spent are gone; the next slice is the last 5.
	later := now.Add(leaseLife + time.Millisecond)
	for i := range 5 {
		if r, _ := ls.allow(later, lim, f.take); !r.Allowed {
			t.Fatalf("request %d of the last 5: refused", i+1)
		}
	}
	if f.calls != 2 {
		t.Fatalf("%d calls to Redis, want 2 (the first slice lapsed)", f.calls)
	}
	r, _ := ls.allow(later, lim, f.take)
	if r.Allowed || r.RetryAfter != 500*time.Millisecond {
		t.Fatalf("past what Redis had: %+v, want refused for 500ms", r)
	}
	r, _ = ls.allow(later.Add(200*time.Millisecond), lim, f.take)
	if r.Allowed || r.RetryAfter != 300*time.Millisecond || f.calls != 3 {
		t.Fatalf("within the refusal: %+v after %d calls, want refused for 300ms without a call", r, f.calls)
	}
	f.have = 1
	if r, _ := ls.allow(later.Add(500*time.Millisecond), lim, f.take); !r.Allowed || f.calls != 4 {
		t.Fatalf("after the refusal: %+v after %d calls, want Redis asked and the request allowed", r, f.calls)
	}
}

// BenchmarkAllow is the cost of one check of a busy caller with a high
// limit, from goroutines in parallel: what every API request with a key
// pays.
func BenchmarkAllow(b *testing.B) {
	l, err := New(client(b, "redis://127.0.0.1:6379/0"), fmt.Sprintf("ratelimit-bench-%d", time.Now().UnixNano()), quiet())
	if err != nil {
		b.Fatal(err)
	}
	lim := Limit{Rate: 1_000_000, Burst: 1_000_000}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := l.Allow(context.Background(), "k", lim); !r.Allowed {
				b.Fatalf("refused: %+v", r)
			}
		}
	})
}
