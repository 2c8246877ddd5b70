package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// namedWindow is a context window with what an item's cost is made of:
// the summary's and each message's tokens, and a message's name.
type namedWindow struct {
	Summary *struct {
		FromSeq int `json:"from_seq"`
		ToSeq   int `json:"to_seq"`
		Tokens  int `json:"tokens"`
		Cost    int `json:"cost"`
	} `json:"summary"`
	Messages []struct {
		Seq    int     `json:"seq"`
		Name   *string `json:"name"`
		Tokens int     `json:"tokens"`
		Cost   int     `json:"cost"`
	} `json:"messages"`
	Memories []struct {
		Tokens int `json:"tokens"`
		Cost   int `json:"cost"`
	} `json:"memories"`
	TotalTokens int `json:"total_tokens"`
}

// Over random sessions that have summaries, and random budgets and
// shares, the window never exceeds its budget, its total is the sum of its
// items' costs (each its tokens plus 4, plus a name's tokens and 1), its
// messages are the newest, in order, and many windows hold the summary.
func TestContextWindowWithSummariesNeverExceedsBudget(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms",
		"ARQ_SUMMARY_THRESHOLD_TOKENS": "60", "ARQ_SUMMARY_RECENT_TOKENS": "40", "ARQ_SUMMARY_MAX_TOKENS": "120"})
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 17))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ps", "name": "PS"})).Str("id")
	for m := 0; m < 20; m++ {
		s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": words(r, 3+r.IntN(40)), "importance": r.Float64()}, "Prefer", "respond-async"))
	}
	names := []string{"weather_lookup", "garden-bot", "Ada", "tool_7"}
	var sessions []string
	lastSeq := map[string]int{}
	for i := 0; i < 5; i++ {
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
		sessions = append(sessions, sid)
		var batch []map[string]any
		for n := 10 + r.IntN(40); n > 0; n-- {
			m := map[string]any{"role": []string{"user", "assistant", "tool"}[r.IntN(3)], "content": words(r, 1+r.IntN(60))}
			if r.IntN(4) == 0 {
				m["name"] = names[r.IntN(len(names))]
			}
			batch = append(batch, m)
		}
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}))
		lastSeq[sid] = len(batch)
	}
	// Every session is far past the threshold: wait for its summary.
	pool := testdb.Pool(t, s.URL)
	testwait.Eventually(t, 60*time.Second, "a summary of every session", func() (bool, error) {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT session_id) FROM session_summaries`).Scan(&n)
		return n == len(sessions), err
	})

	withSummary, named := 0, 0
	for c := 0; c < 150; c++ {
		sid := sessions[r.IntN(len(sessions))]
		max := 1 + r.IntN(1500)
		q := fmt.Sprintf("max_tokens=%d&summary_share=%.2f&memory_share=%.2f&query=%s", max, r.Float64()*0.6, r.Float64()*0.4, url.QueryEscape(words(r, 2)))
		var w namedWindow
		if err := json.Unmarshal(s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil)).Body, &w); err != nil {
			t.Fatal(err)
		}
		sum := 0
		if w.Summary != nil {
			withSummary++
			if w.Summary.Cost != w.Summary.Tokens+4 || w.Summary.Tokens < 1 || w.Summary.FromSeq < 1 || w.Summary.ToSeq < w.Summary.FromSeq {
				t.Fatalf("%s: summary %+v", q, w.Summary)
			}
			sum += w.Summary.Cost
		}
		for i, m := range w.Messages {
			want, name := m.Tokens+4, ""
			if m.Name != nil && *m.Name != "" {
				name = *m.Name
				want += tc.Count(name) + 1
				named++
			}
			if m.Cost != want {
				t.Fatalf("%s: message %d costs %d, want %d (tokens %d, name %q)", q, m.Seq, m.Cost, want, m.Tokens, name)
			}
			if i > 0 && m.Seq != w.Messages[i-1].Seq+1 {
				t.Fatalf("%s: messages out of order or with a gap: %d after %d", q, m.Seq, w.Messages[i-1].Seq)
			}
			sum += m.Cost
		}
		if n := len(w.Messages); n > 0 && w.Messages[n-1].Seq != lastSeq[sid] {
			t.Fatalf("%s: the newest message (%d) is not in the window, which ends at %d", q, lastSeq[sid], w.Messages[n-1].Seq)
		}
		for _, m := range w.Memories {
			if m.Cost != m.Tokens+4 {
				t.Fatalf("%s: memory cost %d for %d tokens", q, m.Cost, m.Tokens)
			}
			sum += m.Cost
		}
		if w.TotalTokens != sum || w.TotalTokens > max {
			t.Fatalf("%s: total %d, items %d, budget %d", q, w.TotalTokens, sum, max)
		}
	}
	// The property was tried on windows that held a summary and named
	// messages, not only on others.
	t.Logf("%d of 150 windows held a summary; %d named messages in them", withSummary, named)
	if withSummary < 20 || named == 0 {
		t.Fatalf("%d of 150 windows held a summary, %d named messages seen", withSummary, named)
	}
}

// An expired memory is gone from every read at its expiry time, before
// any background job has recorded it: the expiry pass here runs hourly,
// and no memory.expired event exists when the reads already hide it.
func TestReadsHideExpiredMemoriesThemselves(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "1h"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ex", "name": "Ex"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "When is the garden party?"}))
	stays := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada hosts a garden party every June"})).Str("id")
	at := time.Now().Add(3 * time.Second)
	goes := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "The garden party is tomorrow",
		"expires_at": at.Format(time.RFC3339Nano)})).Str("id")

	// Which of the two memories each read shows.
	reads := map[string]func() []string{
		"context window": func() (ids []string) {
			for _, m := range windowOf(s, sid, "query=garden+party").Memories {
				ids = append(ids, m.ID)
			}
			return ids
		},
		"list": func() (ids []string) {
			for _, m := range s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories", nil)).Items() {
				ids = append(ids, m["id"].(string))
			}
			return ids
		},
		"search": func() (ids []string) {
			for _, m := range s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "garden party"})).Items() {
				ids = append(ids, m["id"].(string))
			}
			return ids
		},
		"GET by id": func() (ids []string) {
			for _, id := range []string{stays, goes} {
				if r := s.Do("GET", "/v1/memories/"+id, nil); r.Status == 200 {
					ids = append(ids, id)
				} else if r.Status != 404 {
					t.Fatalf("GET /v1/memories/%s: %d %s", id, r.Status, r.Body)
				}
			}
			return ids
		},
	}
	holds := func(ids []string, id string) bool {
		for _, x := range ids {
			if x == id {
				return true
			}
		}
		return false
	}
	// Before: each read shows both (and has cached what it could).
	for name, read := range reads {
		for i := 0; i < 2; i++ {
			if ids := read(); !holds(ids, stays) || !holds(ids, goes) {
				t.Fatalf("%s before the expiry: %v, want %s and %s", name, ids, stays, goes)
			}
		}
	}
	if time.Now().After(at) {
		t.Fatal("the memory expired before the test could read it; the machine is too slow for this test")
	}

	time.Sleep(time.Until(at) + 50*time.Millisecond) // the condition is the time itself
	for name, read := range reads {
		if ids := read(); !holds(ids, stays) || holds(ids, goes) {
			t.Errorf("%s after the expiry: %v, want %s without %s", name, ids, stays, goes)
		}
	}
	// The reads hid it themselves: nothing recorded the expiry.
	var expired int
	if err := testdb.Pool(t, s.URL).QueryRow(context.Background(), `SELECT count(*) FROM events WHERE event_type = 'memory.expired'`).Scan(&expired); err != nil {
		t.Fatal(err)
	}
	if expired != 0 {
		t.Fatalf("%d memory.expired events: the background expiry ran, so the test proves nothing", expired)
	}
}
