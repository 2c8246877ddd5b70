package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// fakeRows is an EntitySource of memories held in memory: id to stamp and
// body; a missing id is not found.
type fakeRows struct {
	mu    sync.Mutex
	rows  map[string]readmodel.Encoded
	loads int
}

func (f *fakeRows) set(id string, version int, body string, expires *time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[id] = readmodel.Encoded{JSON: []byte(body), Version: version, Stamp: fmt.Sprint(version), ExpiresAt: expires}
}

func (f *fakeRows) StampOf(_ context.Context, _ domain.Kind, _, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rows[id]
	if !ok {
		return "", fmt.Errorf("%w: memory %s", domain.ErrNotFound, id)
	}
	return r.Stamp, nil
}

func (f *fakeRows) Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error) {
	if _, err := f.StampOf(ctx, kind, tenant, id); err != nil {
		return readmodel.Encoded{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	return f.rows[id], nil
}

func newTestCache(t *testing.T, localBytes int64) *Cache {
	t.Helper()
	url := os.Getenv("ARQ_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := New(url, localBytes, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("the cache tests need Redis: %v", err)
	}
	return c
}

func TestEntitiesServeOnlyTheStampPostgresHasNow(t *testing.T) {
	ctx := context.Background()
	src := &fakeRows{rows: map[string]readmodel.Encoded{}}
	c := newTestCache(t, 1<<20)
	e := NewEntities(src, c, fmt.Sprintf("test-%d", time.Now().UnixNano()))
	t.Cleanup(func() { c.rdb.Del(context.Background(), e.prefix+"memory:m1") })
	read := func(want, cache string) {
		t.Helper()
		got, err := e.Encoded(ctx, domain.KindMemory, "", "m1")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.JSON) != want || got.Cache != cache {
			t.Fatalf("read %s (%s), want %s (%s)", got.JSON, got.Cache, want, cache)
		}
	}
	src.set("m1", 1, `{"v":1}`, nil)
	read(`{"v":1}`, "miss")
	read(`{"v":1}`, "hit")
	if got, _ := e.Encoded(ctx, domain.KindMemory, "", "m1"); got.Version != 1 {
		t.Fatalf("version from the cache: %d", got.Version)
	}

	src.set("m1", 2, `{"v":2}`, nil)
	read(`{"v":2}`, "miss")
	read(`{"v":2}`, "hit")

	// Postgres says gone: the entry is never consulted.
	src.mu.Lock()
	delete(src.rows, "m1")
	src.mu.Unlock()
	if _, err := e.Encoded(ctx, domain.KindMemory, "", "m1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("read of a deleted entity: %v", err)
	}
}

// A memory is kept no longer than until it expires.
func TestEntitiesKeepNoLongerThanExpiry(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, 1<<20)
	src := &fakeRows{rows: map[string]readmodel.Encoded{}}
	e := NewEntities(src, c, fmt.Sprintf("test-%d", time.Now().UnixNano()))
	t.Cleanup(func() { c.rdb.Del(context.Background(), e.prefix+"memory:m1", e.prefix+"memory:m2") })
	soon := time.Now().Add(time.Minute)
	src.set("m1", 1, `{}`, &soon)
	if _, err := e.Encoded(ctx, domain.KindMemory, "", "m1"); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.rdb.PTTL(ctx, e.prefix+"memory:m1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of a memory expiring in a minute: %s", ttl)
	}
	past := time.Now().Add(-time.Second)
	src.set("m2", 1, `{}`, &past)
	if _, err := e.Encoded(ctx, domain.KindMemory, "", "m2"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.rdb.Exists(ctx, e.prefix+"memory:m2").Result(); err != nil || n != 0 {
		t.Fatalf("a memory past its expiry time was kept: %d %v", n, err)
	}
}
