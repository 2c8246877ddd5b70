package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
)

// countingKeys counts the lookups of the key store: each one is a SQL
// query.
type countingKeys struct {
	api.KeyStore
	lookups *atomic.Int64
}

func (k countingKeys) Lookup(ctx context.Context, secret string) (api.Key, error) {
	k.lookups.Add(1)
	return k.KeyStore.Lookup(ctx, secret)
}

// startLimited starts a server with low limits: each key 1 request a
// second with a burst of 3, each address 1 a second (burst 2) with a
// missing or wrong key. lookups counts the key store's lookups.
func startLimited(t *testing.T, env map[string]string) (s *testserver.Server, lookups *atomic.Int64) {
	t.Helper()
	lookups = &atomic.Int64{}
	e := map[string]string{"ARQ_ADMIN_KEY": "admin-secret", "ARQ_RATE_LIMIT": "1", "ARQ_RATE_LIMIT_BURST": "3", "ARQ_RATE_LIMIT_ANONYMOUS": "1"}
	for k, v := range env {
		e[k] = v
	}
	s = testserver.StartLogged(t, e, func(o *app.Options) {
		o.WrapKeys = func(k api.KeyStore) api.KeyStore { return countingKeys{k, lookups} }
	})
	return s, lookups
}

// isRateLimited fails the test unless r is a 429 problem with
// Retry-After and the RateLimit headers.
func isRateLimited(t *testing.T, r testserver.Response, burst int) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Content-Type") != "application/problem+json" ||
		r.Str("type") != "https://arq.dev/problems/rate-limited" {
		t.Fatalf("want a 429 rate-limited problem, got %d %s: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q, want whole seconds, at least 1", r.Header.Get("Retry-After"))
	}
	if r.Header.Get("RateLimit-Limit") != strconv.Itoa(burst) || r.Header.Get("RateLimit-Remaining") != "0" ||
		r.Header.Get("RateLimit-Reset") == "" {
		t.Fatalf("RateLimit headers: %v", r.Header)
	}
}

// untilLimited sends up to 30 requests until one is answered 429 and
// returns it, after checking that the first burst ones went through with
// want. The limit refills at 1 a second: a slow machine may let one or
// two more through, never 30.
func untilLimited(t *testing.T, send func() testserver.Response, burst, want int) testserver.Response {
	t.Helper()
	for i := range 30 {
		r := send()
		if r.Status == http.StatusTooManyRequests {
			if i < burst {
				t.Fatalf("request %d refused within the burst of %d: %s", i+1, burst, r.Body)
			}
			return r
		}
		if r.Status != want {
			t.Fatalf("request %d: %d, want %d: %s", i+1, r.Status, want, r.Body)
		}
	}
	t.Fatal("30 requests at once never went over a limit of 1 a second")
	return testserver.Response{}
}

func createKey(t *testing.T, s *testserver.Server, name string) string {
	t.Helper()
	s.Key = "admin-secret"
	return s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": name, "scopes": []string{"read", "write"}})).Str("key")
}

// checkLimits runs the checks of the limits on s: a key's burst passes,
// then 429; another key is unaffected; wrong keys from one address are
// refused with 429 without a database lookup each.
func checkLimits(t *testing.T, s *testserver.Server, lookups *atomic.Int64) {
	t.Helper()
	a, b := createKey(t, s, "a"), createKey(t, s, "b")
	s.Key = a
	first := s.Must(200, s.Do("GET", "/v1/users", nil))
	if first.Header.Get("RateLimit-Limit") != "3" || first.Header.Get("RateLimit-Remaining") != "2" {
		t.Fatalf("RateLimit headers of an allowed request: %v", first.Header)
	}
	isRateLimited(t, untilLimited(t, func() testserver.Response { return s.Do("GET", "/v1/users", nil) }, 2, 200), 3)

	// Another key has a limit of its own; the admin key has none.
	s.Key = b
	s.Must(200, s.Do("GET", "/v1/users", nil))
	s.Key = "admin-secret"
	for range 5 {
		s.Must(200, s.Do("GET", "/v1/users", nil))
	}

	// A wrong key is looked up once, then known for a while.
	s.Key = "wrong-again"
	before := lookups.Load()
	s.Must(401, s.Do("GET", "/v1/users", nil))
	s.Must(401, s.Do("GET", "/v1/users", nil))
	if n := lookups.Load() - before; n != 1 {
		t.Fatalf("the same wrong key twice: %d lookups, want 1", n)
	}
	// A flood of different wrong keys from one address: over the
	// address's limit, answered 429 with no lookup.
	before = lookups.Load()
	sent := 0
	r := untilLimited(t, func() testserver.Response {
		sent++
		s.Key = fmt.Sprintf("wrong-%d", sent)
		return s.Do("GET", "/v1/users", nil)
	}, 0, 401)
	isRateLimited(t, r, 2)
	if n := lookups.Load() - before; n > int64(sent) {
		t.Fatalf("%d wrong keys cost %d lookups", sent, n)
	}
	// While the address waits out its Retry-After, its requests are
	// refused before any lookup. The limit refills at 1 a second: each
	// second the requests take lets one more through, at two lookups.
	before = lookups.Load()
	start := time.Now()
	refused := 0
	for range 10 {
		sent++
		s.Key = fmt.Sprintf("wrong-%d", sent)
		if r := s.Do("GET", "/v1/users", nil); r.Status == http.StatusTooManyRequests {
			isRateLimited(t, r, 2)
			refused++
		}
	}
	secs := int64(time.Since(start)/time.Second) + 1
	if n := lookups.Load() - before; n > 2*secs || int64(refused) < 10-secs {
		t.Fatalf("10 wrong keys in %ds over the limit: %d lookups, %d refused", secs, n, refused)
	}
	// No key at all counts against the address too.
	s.Key = ""
	isRateLimited(t, untilLimited(t, func() testserver.Response { return s.Do("GET", "/v1/users", nil) }, 0, 401), 2)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	s, lookups := startLimited(t, nil)
	checkLimits(t, s, lookups)
}

// With Redis unreachable each instance holds the limits alone.
func TestRateLimitsWithoutRedis(t *testing.T) {
	t.Parallel()
	s, lookups := startLimited(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t))})
	checkLimits(t, s, lookups)
	if len(s.Where(t, map[string]any{"msg": "redis unreachable: rate limits are held by each process alone"})) == 0 {
		t.Fatal("the fall back to local limits was not logged")
	}
}
