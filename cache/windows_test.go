package cache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
)

// fakeWindows builds windows that name how many it built.
type fakeWindows struct {
	builds  int
	expires *time.Time
}

func (f *fakeWindows) EncodedWindow(_ context.Context, sessionID string, _ readmodel.WindowState, _ readmodel.WindowRequest) (queries.EncodedWindow, error) {
	f.builds++
	return queries.EncodedWindow{JSON: []byte(fmt.Sprintf(`{"session_id":%q,"build":%d}`, sessionID, f.builds)), ExpiresAt: f.expires}, nil
}

// A window is served from the cache while the tables stay in the state
// it was built from, built again once they move, and not kept past the
// expiry of a memory it holds.
func TestWindowsKeyedByState(t *testing.T) {
	ctx := context.Background()
	src := &fakeWindows{}
	w := NewWindows(src, newTestCache(t, 0), fmt.Sprintf("test-%d", time.Now().UnixNano()))
	now := time.Now()
	req := readmodel.WindowRequest{Budget: domain.DefaultBudget(), Query: "bees", Now: now}
	st := readmodel.WindowState{UserID: "u1", Messages: 1, Summaries: 2, Memories: 3, Rebuilds: 4}
	read := func(st readmodel.WindowState, wantBody, wantCache string) {
		t.Helper()
		got, err := w.EncodedWindow(ctx, "s1", st, req)
		if err != nil || string(got.JSON) != wantBody || got.Cache != wantCache {
			t.Fatalf("window: %s %q (%v); want %s %q", got.JSON, got.Cache, err, wantBody, wantCache)
		}
	}
	read(st, `{"session_id":"s1","build":1}`, "miss")
	read(st, `{"session_id":"s1","build":1}`, "hit")
	st.Messages++
	read(st, `{"session_id":"s1","build":2}`, "miss")
	read(st, `{"session_id":"s1","build":2}`, "hit")

	past := now.Add(-time.Second)
	src.expires = &past
	st.Memories++
	read(st, `{"session_id":"s1","build":3}`, "miss")
	read(st, `{"session_id":"s1","build":4}`, "miss")
}

// The key names what it always named, in the format it always had; a
// server names the query by a keyed hash (KeyedBy), so a deployment
// upgraded to it misses its cached windows once, for at most windowTTL.
func TestWindowKeyFormat(t *testing.T) {
	w := NewWindows(nil, nil, "arq:0000")
	req := readmodel.WindowRequest{Budget: domain.Budget{MaxTokens: 4000, SummaryShare: 0.2, MemoryShare: 0.25}, Query: "bees", Embedding: []float32{1, 0.5}}
	st := readmodel.WindowState{Messages: 7, Summaries: 0, Memories: 12, Rebuilds: 1}
	h := sha256.New()
	h.Write([]byte(req.Query))
	h.Write([]byte{0})
	_ = binary.Write(h, binary.LittleEndian, req.Embedding)
	want := fmt.Sprintf("arq:%s:ctx:v2:%s:%d.%d.%d.%d:%d:%g:%g:%x", "arq:0000", "s1", st.Messages, st.Summaries, st.Memories, st.Rebuilds,
		req.Budget.MaxTokens, req.Budget.SummaryShare, req.Budget.MemoryShare, h.Sum(nil)[:12])
	if got := w.key("s1", st, req); got != want {
		t.Fatalf("key %q, want %q", got, want)
	}
	old := testing.AllocsPerRun(100, func() {
		_ = fmt.Sprintf("arq:%s:ctx:v2:%s:%d.%d.%d.%d:%d:%g:%g:%x", "arq:0000", "s1", st.Messages, st.Summaries, st.Memories, st.Rebuilds,
			req.Budget.MaxTokens, req.Budget.SummaryShare, req.Budget.MemoryShare, queryHash(nil, req))
	})
	if got := testing.AllocsPerRun(100, func() { _ = w.key("s1", st, req) }); got > old {
		t.Errorf("a window's key costs %v allocations, more than the %v fmt.Sprintf cost", got, old)
	}

	// Keyed, the query is named by an HMAC, which names it as the plain
	// hash does not: a guess of the query cannot be checked against it.
	secret := []byte("a deployment's derived key")
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(req.Query))
	mac.Write([]byte{0})
	_ = binary.Write(mac, binary.LittleEndian, req.Embedding)
	keyed := fmt.Sprintf("arq:%s:ctx:v2:%s:%d.%d.%d.%d:%d:%g:%g:%x", "arq:0000", "s1", st.Messages, st.Summaries, st.Memories, st.Rebuilds,
		req.Budget.MaxTokens, req.Budget.SummaryShare, req.Budget.MemoryShare, mac.Sum(nil)[:12])
	if got := NewWindows(nil, nil, "arq:0000").KeyedBy(secret).key("s1", st, req); got != keyed || got == want {
		t.Fatalf("keyed: key %q, want %q", got, keyed)
	}
}

// bigWindows builds windows of a given size.
type bigWindows struct {
	size   int
	builds int
}

func (f *bigWindows) EncodedWindow(context.Context, string, readmodel.WindowState, readmodel.WindowRequest) (queries.EncodedWindow, error) {
	f.builds++
	return queries.EncodedWindow{JSON: []byte(`"` + strings.Repeat("x", f.size-2) + `"`)}, nil
}

// A window larger than MaxWindowBytes is served as built and kept
// nowhere, neither in Redis nor in memory; one at the cap is kept, and
// with a time to live.
func TestLargeWindowsAreNotCached(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, 8<<20)
	for _, tc := range []struct {
		size  int
		cache []string
	}{
		{MaxWindowBytes + 1, []string{"uncached", "uncached"}},
		{MaxWindowBytes, []string{"miss", "hit"}},
	} {
		src := &bigWindows{size: tc.size}
		w := NewWindows(src, c, fmt.Sprintf("test-%d", time.Now().UnixNano()))
		req := readmodel.WindowRequest{Budget: domain.DefaultBudget(), Now: time.Now()}
		st := readmodel.WindowState{Messages: 1}
		for i, want := range tc.cache {
			got, err := w.EncodedWindow(ctx, "s1", st, req)
			if err != nil || len(got.JSON) != tc.size || got.Cache != want {
				t.Fatalf("%d bytes, read %d: %d bytes %q (%v); want %q", tc.size, i, len(got.JSON), got.Cache, err, want)
			}
		}
		key := w.key("s1", st, req)
		t.Cleanup(func() { c.rdb.Del(context.Background(), key) })
		n, err := c.rdb.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if inRedis := n == 1; inRedis != (tc.size <= MaxWindowBytes) {
			t.Errorf("a window of %d bytes in Redis: %v", tc.size, inRedis)
		}
		if ttl := c.rdb.PTTL(ctx, key).Val(); n == 1 && (ttl <= 0 || ttl > windowTTL) {
			t.Errorf("a window of %d bytes has PTTL %v in Redis, want (0, %v]", tc.size, ttl, windowTTL)
		}
		if _, inMemory := c.local.GetIfPresent(key); inMemory != (tc.size <= MaxWindowBytes) {
			t.Errorf("a window of %d bytes in memory: %v", tc.size, inMemory)
		}
	}
}
