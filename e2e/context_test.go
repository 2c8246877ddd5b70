package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// window is a context window as GET /v1/sessions/{id}/context answers it.
type window struct {
	MaxTokens int `json:"max_tokens"`
	Summary   *struct {
		Version int    `json:"version"`
		Content string `json:"content"`
		FromSeq int    `json:"from_seq"`
		ToSeq   int    `json:"to_seq"`
		Method  string `json:"method"`
		Cost    int    `json:"cost"`
		Tokens  int    `json:"tokens"`
	} `json:"summary"`
	Messages []struct {
		ID      string `json:"id"`
		Seq     int    `json:"seq"`
		Content string `json:"content"`
		Tokens  int    `json:"tokens"`
		Cost    int    `json:"cost"`
	} `json:"messages"`
	Memories []struct {
		ID      string  `json:"id"`
		Content string  `json:"content"`
		Tokens  int     `json:"tokens"`
		Cost    int     `json:"cost"`
		Score   float64 `json:"score"`
	} `json:"memories"`
	TotalTokens int `json:"total_tokens"`
}

func windowOf(s *testserver.Server, sid, query string) window {
	s.T().Helper()
	r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+query, nil))
	var w window
	if err := json.Unmarshal(r.Body, &w); err != nil {
		s.T().Fatal(err)
	}
	return w
}

var lorem = strings.Fields(`the garden needs water every morning while tomatoes ripen slowly in the sun
and the cat sleeps near the window as rain falls over the old stone wall beside the river`)

func words(r *rand.Rand, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = lorem[r.IntN(len(lorem))]
	}
	return strings.Join(out, " ")
}

// Over random sessions and budgets the window never exceeds its budget,
// every item costs its tokens plus the documented overhead of 4, and the
// messages are the newest ones, in order, without a gap.
func TestContextWindowNeverExceedsBudget(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	r := rand.New(rand.NewPCG(7, 11))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "p", "name": "P"})).Str("id")
	for m := 0; m < 30; m++ {
		s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": words(r, 3+r.IntN(60)), "importance": r.Float64()}, "Prefer", "respond-async"))
	}
	var sessions []string
	var last testserver.Response
	for i := 0; i < 4; i++ {
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
		sessions = append(sessions, sid)
		var batch []map[string]any
		for n := r.IntN(60); n > 0; n-- {
			role := []string{"user", "assistant"}[r.IntN(2)]
			batch = append(batch, map[string]any{"role": role, "content": words(r, 1+r.IntN(120))})
		}
		if len(batch) > 0 {
			last = s.Must(202, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}, "Prefer", "respond-async"))
		}
	}
	pos := last.Header.Get("X-Arq-Position")
	for c := 0; c < 120; c++ {
		sid := sessions[r.IntN(len(sessions))]
		max := 1 + r.IntN(3000)
		q := fmt.Sprintf("max_tokens=%d&summary_share=%.2f&memory_share=%.2f", max, r.Float64()*0.4, r.Float64()*0.5)
		resp := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil, "X-Arq-Min-Position", pos))
		var w window
		if err := json.Unmarshal(resp.Body, &w); err != nil {
			t.Fatal(err)
		}
		sum := 0
		for i, m := range w.Messages {
			if m.Cost != m.Tokens+4 {
				t.Fatalf("%s: message cost %d for %d tokens", q, m.Cost, m.Tokens)
			}
			if i > 0 && m.Seq != w.Messages[i-1].Seq+1 {
				t.Fatalf("%s: messages out of order or with a gap: %d after %d", q, m.Seq, w.Messages[i-1].Seq)
			}
			sum += m.Cost
		}
		for _, m := range w.Memories {
			if m.Cost != m.Tokens+4 {
				t.Fatalf("%s: memory cost %d for %d tokens", q, m.Cost, m.Tokens)
			}
			sum += m.Cost
		}
		if sum != w.TotalTokens || w.TotalTokens > max {
			t.Fatalf("%s: total %d, items %d, budget %d", q, w.TotalTokens, sum, max)
		}
		all := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=100", nil)).Items()
		if n := len(w.Messages); n > 0 && int(all[len(all)-1]["seq"].(float64)) != w.Messages[n-1].Seq {
			t.Fatalf("%s: the newest message is not in the window", q)
		}
	}

	// With nothing set aside for a summary or memories, the messages are
	// all the newest that fit: none left out that would have fitted. A
	// session of many short messages takes more than one page (200).
	long := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for b := 0; b < 3; b++ {
		var batch []map[string]any
		for n := 0; n < 90; n++ {
			batch = append(batch, map[string]any{"role": "user", "content": words(r, 1+r.IntN(3))})
		}
		pos = s.Must(202, s.Do("POST", "/v1/sessions/"+long+"/messages", map[string]any{"messages": batch}, "Prefer", "respond-async")).Header.Get("X-Arq-Position")
	}
	sessions = append(sessions, long, long, long)
	for c := 0; c < 40; c++ {
		sid := sessions[r.IntN(len(sessions))]
		max := 1 + r.IntN(3000)
		q := fmt.Sprintf("max_tokens=%d&summary_share=0&memory_share=0", max)
		var w window
		if err := json.Unmarshal(s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil, "X-Arq-Min-Position", pos)).Body, &w); err != nil {
			t.Fatal(err)
		}
		var all []map[string]any
		for cursor := ""; ; {
			page := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=100&cursor="+cursor, nil))
			all = append(all, page.Items()...)
			if cursor, _ = page.JSON["next_cursor"].(string); cursor == "" {
				break
			}
		}
		fit, spent := 0, 0
		for i := len(all) - 1; i >= 0; i-- {
			cost := int(all[i]["tokens"].(float64)) + 4
			if spent+cost > max {
				break
			}
			fit, spent = fit+1, spent+cost
		}
		if len(w.Messages) != fit {
			t.Fatalf("%s: %d messages in the window, %d of the newest fit", q, len(w.Messages), fit)
		}
	}
}

// The newest messages are kept first; memories rank by relevance to the
// query, then importance; expired and deleted memories never appear.
func TestContextRelevanceAndExpiry(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for i := 1; i <= 30; i++ {
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("message number %d about nothing much", i)}))
	}
	w := windowOf(s, sid, "max_tokens=60&memory_share=0")
	if len(w.Messages) == 0 || w.Messages[len(w.Messages)-1].Seq != 30 || len(w.Messages) == 30 {
		t.Fatalf("window of 60 tokens: %+v", w.Messages)
	}
	// A share given alone takes what it needs of the other's default; a
	// wrong share is one error.
	windowOf(s, sid, "memory_share=1")
	windowOf(s, sid, "summary_share=0.9")
	bad := s.Do("GET", "/v1/sessions/"+sid+"/context?memory_share=1.5", nil)
	isProblem(t, bad, 422, "memory_share")
	if errs, _ := bad.JSON["errors"].([]any); len(errs) != 1 {
		t.Fatalf("memory_share=1.5: %s", bad.Body)
	}

	mem := func(content string, importance float64, extra map[string]any) string {
		body := map[string]any{"type": "semantic", "content": content, "importance": importance}
		for k, v := range extra {
			body[k] = v
		}
		return s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", body)).Str("id")
	}
	garden := mem("Ada grows tomatoes in her shaded garden", 0.2, nil)
	important := mem("Ada is allergic to peanuts", 0.95, nil)
	trivia := mem("Ada once visited Lisbon", 0.1, nil)
	gone := mem("Ada's garden gnome is named Bob", 0.5, nil)
	s.Must(204, s.Do("DELETE", "/v1/memories/"+gone, nil))
	expiring := mem("Ada's garden party is tomorrow", 0.9, map[string]any{"expires_at": time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano)})

	w = windowOf(s, sid, "query=garden+tomatoes")
	order := map[string]int{}
	for i, m := range w.Memories {
		order[m.ID] = i + 1
	}
	if order[garden] == 0 || order[important] == 0 || order[trivia] == 0 || order[gone] != 0 {
		t.Fatalf("memories in window: %+v", w.Memories)
	}
	if order[garden] > order[important] || order[important] > order[trivia] {
		t.Fatalf("ranking for 'garden tomatoes': garden %d, important %d, trivia %d", order[garden], order[important], order[trivia])
	}
	// Without a query the latest user message decides: it is about nothing
	// in the memories, so importance leads.
	w = windowOf(s, sid, "")
	if len(w.Memories) == 0 || w.Memories[0].ID != important && w.Memories[0].ID != expiring {
		t.Fatalf("without a query: %+v", w.Memories)
	}
	testwait.Eventually(t, 10*time.Second, "expired memory leaves the window", func() (bool, error) {
		for _, m := range windowOf(s, sid, "query=garden+party").Memories {
			if m.ID == expiring {
				return false, nil
			}
		}
		return true, nil
	})
}

// snapshot is a context snapshot with the texts of its items.
type snapshot struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
	Total     int    `json:"total_tokens"`
	Items     []struct {
		Kind    string `json:"kind"`
		ID      string `json:"id"`
		Version int    `json:"version"`
		Tokens  int    `json:"tokens"`
		Content string `json:"content"`
	} `json:"items"`
}

func decodeSnapshot(t *testing.T, r testserver.Response) snapshot {
	t.Helper()
	var sn snapshot
	if err := json.Unmarshal(r.Body, &sn); err != nil {
		t.Fatal(err)
	}
	return sn
}

// The context behind an assistant message is recorded, and so is one a
// client takes; both keep the texts they held after those items are
// edited or deleted.
func TestSnapshotsKeepWhatTheContextHeld(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "400ms"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "s", "name": "S"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada likes ferns"})).Str("id")
	question := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "Which ferns like shade?"})).Str("id")
	answer := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": "Most ferns do."})).Str("id")
	late := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada bought more ferns"})).Str("id")

	var behind snapshot
	testwait.Eventually(t, 20*time.Second, "snapshot of the assistant message", func() (bool, error) {
		r := s.Do("GET", "/v1/messages/"+answer+"/context", nil)
		if r.Status == 200 {
			behind = decodeSnapshot(t, r)
		}
		return r.Status == 200, nil
	})
	texts := map[string]string{}
	for _, it := range behind.Items {
		texts[it.ID] = it.Content
		if it.ID == answer {
			t.Fatal("the context behind a message holds the message itself")
		}
	}
	if texts[question] != "Which ferns like shade?" || texts[mid] != "Ada likes ferns" || behind.MessageID != answer {
		t.Fatalf("context behind the answer: %+v", behind)
	}
	for _, it := range behind.Items {
		if it.ID == late {
			t.Fatal("the context behind the answer holds a memory stored after it")
		}
	}
	taken := decodeSnapshot(t, s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{"max_tokens": 500})))

	s.Must(200, s.Do("PATCH", "/v1/messages/"+question, map[string]any{"content": "Which cacti like sun?"}))
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "Ada dislikes ferns"}))
	s.Must(204, s.Do("DELETE", "/v1/memories/"+mid, nil))
	s.Must(204, s.Do("DELETE", "/v1/messages/"+question, nil))

	again := decodeSnapshot(t, s.Must(200, s.Do("GET", "/v1/messages/"+answer+"/context", nil)))
	if fmt.Sprint(again) != fmt.Sprint(behind) {
		t.Fatalf("snapshot changed after edits:\nbefore %+v\nafter  %+v", behind, again)
	}
	later := decodeSnapshot(t, s.Must(200, s.Do("GET", "/v1/context-snapshots/"+taken.ID, nil)))
	if fmt.Sprint(later) != fmt.Sprint(taken) || len(taken.Items) < 3 {
		t.Fatalf("taken snapshot changed after edits:\nbefore %+v\nafter  %+v", taken, later)
	}
	list := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context/snapshots", nil)).Items()
	if len(list) != 2 {
		t.Fatalf("session has %d snapshots, want 2", len(list))
	}
}

// Past the threshold a summary is made (extractive by default), stored as
// an event, and served in the context window.
func TestSummaryPastThreshold(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "100", "ARQ_SUMMARY_RECENT_TOKENS": "60", "ARQ_SUMMARY_MAX_TOKENS": "50"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "m", "name": "M"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "My tomatoes get blight every summer."}))
	w := windowOf(s, sid, "")
	if w.Summary != nil {
		t.Fatalf("summary below the threshold: %+v", w.Summary)
	}
	for i := 0; i < 12; i++ {
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": fmt.Sprintf("Tomato blight advice number %d: water the soil, not the leaves, and rotate the beds.", i)}))
	}
	testwait.Eventually(t, 20*time.Second, "summary in the context window", func() (bool, error) {
		w = windowOf(s, sid, "max_tokens=150&summary_share=0.5")
		return w.Summary != nil, nil
	})
	if w.Summary.Method != "extractive" || !strings.Contains(strings.ToLower(w.Summary.Content), "blight") || w.Summary.ToSeq < 1 || w.Summary.Cost != w.Summary.Tokens+4 {
		t.Fatalf("summary: %+v", w.Summary)
	}
	if len(w.Messages) > 0 && w.Messages[0].Seq <= w.Summary.ToSeq && len(w.Messages) == 13 {
		t.Fatalf("summary beside every message")
	}
	code, out, _ := runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
	if code != 0 || !strings.Contains(out, `"session.summarized"`) {
		t.Fatalf("summary event: %d %s", code, out)
	}

	// Past the threshold again, the next summary takes over from the
	// last: it starts after the messages the first one covered.
	first := w.Summary
	for i := 0; i < 12; i++ {
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("Question %d about peppers: how deep do their roots go in clay?", i)}))
	}
	testwait.Eventually(t, 20*time.Second, "a second summary", func() (bool, error) {
		w = windowOf(s, sid, "max_tokens=150&summary_share=0.5")
		return w.Summary != nil && w.Summary.Version > first.Version, nil
	})
	// Each summary in the log starts where the one before it ended.
	code, out, _ = runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
	if code != 0 {
		t.Fatalf("summary events: %d %s", code, out)
	}
	next := 1
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Data struct {
				FromSeq int `json:"from_seq"`
				ToSeq   int `json:"to_seq"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("summary event %q: %v", line, err)
		}
		if e.Data.FromSeq != next || e.Data.ToSeq < e.Data.FromSeq {
			t.Fatalf("summary covers %d..%d, want it to start at %d: %s", e.Data.FromSeq, e.Data.ToSeq, next, out)
		}
		next = e.Data.ToSeq + 1
	}
	if next <= first.ToSeq+1 {
		t.Fatalf("no summary after the first (%d..%d): %s", first.FromSeq, first.ToSeq, out)
	}
}

// Sessions the summarizer fails on do not hold up the others: more of
// them than a pass takes, each costing more than the one session it can
// summarize, and that session still gets its summary.
func TestFailingSessionsDoNotHoldUpTheOthers(t *testing.T) {
	t.Parallel()
	var failed atomic.Int64
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "poison") {
			failed.Add(1)
			http.Error(w, "cannot summarize this", 500)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "Fine."}}}})
	}))
	defer chat.Close()
	s := testserver.Start(t, map[string]string{
		"ARQ_BACKGROUND_INTERVAL": "20ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "40", "ARQ_SUMMARY_RECENT_TOKENS": "20",
		"ARQ_SUMMARIZER": "chat", "ARQ_SUMMARIZER_URL": chat.URL + "/v1", "ARQ_SUMMARIZER_MODEL": "tiny",
	})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "p", "name": "P"})).Str("id")
	session := func(content string) string {
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
		for i := 0; i < 4; i++ {
			s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("%d %s", i, content)}))
		}
		return sid
	}
	for i := 0; i < 21; i++ { // a pass looks at 20
		session("poison: the slugs ate every lettuce in the bed again, and the beer traps did nothing at all this week")
	}
	good := session("the peppers are ripening on the sunny wall, and the basil beside them has flowered")
	testwait.Eventually(t, 30*time.Second, "a summary of the session the summarizer can do", func() (bool, error) {
		return windowOf(s, good, "max_tokens=60").Summary != nil, nil
	})
	if failed.Load() == 0 {
		t.Fatal("the summarizer never failed: the test checks nothing")
	}
}

// A chat summarizer that fails blocks nothing; once it answers, the
// summary is made from its answer.
func TestChatSummarizerFailsSoftly(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	var calls atomic.Int64
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-test" {
			http.Error(w, "wrong request", 400)
			return
		}
		if fail.Load() {
			http.Error(w, "overloaded", 503)
			return
		}
		var req struct {
			Model    string                     `json:"model"`
			Messages []struct{ Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Model != "tiny" || len(req.Messages) != 2 || !strings.Contains(req.Messages[1].Content, "orchids") {
			http.Error(w, "wrong body", 400)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "The user grows orchids."}}}})
	}))
	defer chat.Close()
	s := testserver.Start(t, map[string]string{
		"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "40", "ARQ_SUMMARY_RECENT_TOKENS": "20",
		"ARQ_SUMMARIZER": "chat", "ARQ_SUMMARIZER_URL": chat.URL + "/v1", "ARQ_SUMMARIZER_MODEL": "tiny", "ARQ_SUMMARIZER_API_KEY": "sk-test",
	})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "C"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for i := 0; i < 8; i++ {
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("My orchids number %d need misting twice a day in winter.", i)}))
	}
	testwait.Eventually(t, 20*time.Second, "the failing summarizer was tried", func() (bool, error) { return calls.Load() > 0, nil })
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "Still here while it fails."}))
	if w := windowOf(s, sid, ""); w.Summary != nil || len(w.Messages) == 0 {
		t.Fatalf("window while the summarizer fails: %+v", w)
	}
	fail.Store(false)
	testwait.Eventually(t, 30*time.Second, "summary from the chat endpoint", func() (bool, error) {
		w := windowOf(s, sid, "max_tokens=100")
		return w.Summary != nil && w.Summary.Content == "The user grows orchids." && w.Summary.Method == "chat:tiny", nil
	})
}

// A latest user message of 30,000 words (a pasted document) still makes a
// context window, with memories ranked by its first words; a search by a
// query too long to match anything is refused.
func TestContextOfAVeryLongMessage(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "long", "name": "L"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	bees := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada keeps bees on the roof", "importance": 0.1})).Str("id")
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada visited Lisbon", "importance": 0.9}))
	r := rand.New(rand.NewPCG(1, 2))
	long := make([]string, 30000)
	for i := range long {
		long[i] = fmt.Sprintf("w%x", r.Uint32()%0xfffff)
	}
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "my bees swarmed " + strings.Join(long, " ")}))
	w := windowOf(s, sid, "max_tokens=1000")
	if len(w.Memories) == 0 || w.Memories[0].ID != bees {
		t.Fatalf("memories for the long message: %+v", w.Memories)
	}
	query := strings.Join(long[:300], " ")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": query}), 422, "query")
	isProblem(t, s.Do("GET", "/v1/users/"+uid+"/memories?q="+strings.Join(long[:300], "+"), nil), 422, "q")
}

// A deleted message is gone from the summaries too: the summaries that
// hold its text are withdrawn at once, windows do without them, and the
// session is summarized anew without it. The log keeps the first
// summary.
func TestRedactionWithdrawsSummaries(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "100", "ARQ_SUMMARY_RECENT_TOKENS": "60", "ARQ_SUMMARY_MAX_TOKENS": "60"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	secret := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": "Garden advice number 8812: water the soil, not the leaves."})).Str("id")
	for i := 0; i < 12; i++ {
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": fmt.Sprintf("Garden advice number x%02d: water the soil, not the leaves.", i)}))
	}
	const query = "max_tokens=150&summary_share=0.5"
	var w window
	testwait.Eventually(t, 20*time.Second, "a summary", func() (bool, error) {
		w = windowOf(s, sid, query)
		return w.Summary != nil, nil
	})
	code, out, _ := runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
	if code != 0 || !strings.Contains(out, "8812") {
		t.Fatalf("no summary holds the message to delete; the test needs one to: %d %s", code, out)
	}
	before := w.Summary.Version

	s.Must(204, s.Do("DELETE", "/v1/messages/"+secret, nil))
	// The delete answered once the query tables held it: from now on no
	// window serves a summary made before it (each reaches the message).
	for _, q := range []string{query, "", "max_tokens=1000&summary_share=0.9"} {
		r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil))
		var w window
		if err := json.Unmarshal(r.Body, &w); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(r.Body), "8812") || (w.Summary != nil && w.Summary.Version <= before) {
			t.Fatalf("window after the delete (%s) holds a summary made before it: %s", q, r.Body)
		}
	}
	testwait.Eventually(t, 20*time.Second, "a new summary", func() (bool, error) {
		w = windowOf(s, sid, query)
		return w.Summary != nil && w.Summary.Version > before, nil
	})
	if strings.Contains(w.Summary.Content, "8812") || w.Summary.FromSeq != 1 {
		t.Fatalf("new summary: %+v", w.Summary)
	}
	code, out, _ = runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
	if code != 0 || !strings.Contains(out, "8812") {
		t.Fatalf("the log lost the first summaries: %d %s", code, out)
	}
}

// A message deleted while the summarizer is making a summary that holds
// it: the summary is refused, and the next one is made without it. (The
// chat endpoint here repeats its transcript, and holds its first answer
// until the message is deleted.)
func TestMessageDeletedWhileSummarizedLeavesNoSummary(t *testing.T) {
	t.Parallel()
	s, sid, inFlight, release := summarizingServer(t, 1)
	say := noteSayer(s, sid)
	var ids []string
	for i := 1; i <= 12; i++ {
		ids = append(ids, say(i))
	}
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("no summary was asked for")
	}
	s.Must(204, s.Do("DELETE", "/v1/messages/"+ids[2], nil)) // OKAPI3
	release()

	// The summary being made is refused; the next one is made from the
	// messages as they are (the log has no summary before it).
	testwait.Eventually(t, 30*time.Second, "a summary without the deleted message", func() (bool, error) {
		_, out, _ := runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
		return strings.Contains(out, "OKAPI1:"), nil
	})
	for _, q := range []string{"max_tokens=300&summary_share=0.9", "max_tokens=4000", ""} {
		if body := string(s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil)).Body); strings.Contains(body, "OKAPI3:") {
			t.Fatalf("window (%s) holds the deleted message: %s", q, body)
		}
	}
	code, out, _ := runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
	if code != 0 || strings.Contains(out, "OKAPI3:") {
		t.Fatalf("a summary in the log holds the deleted message: %d %s", code, out)
	}
}

// A message deleted while the summarizer makes a summary that folds an
// earlier one holding it: the earlier one is withdrawn at once, and the
// new one, which holds the text through it, comes in withdrawn too; the
// session is summarized anew without the message.
func TestMessageDeletedWhileItsSummaryIsFoldedLeavesNoSummary(t *testing.T) {
	t.Parallel()
	s, sid, inFlight, release := summarizingServer(t, 2) // the second summary folds the first
	say := noteSayer(s, sid)
	var ids []string
	for i := 1; i <= 8; i++ {
		ids = append(ids, say(i))
	}
	var first window
	testwait.Eventually(t, 20*time.Second, "a first summary", func() (bool, error) {
		first = windowOf(s, sid, "max_tokens=300&summary_share=0.9")
		return first.Summary != nil, nil
	})
	if !strings.Contains(first.Summary.Content, "OKAPI1:") {
		t.Fatalf("first summary: %+v", first.Summary)
	}
	for i := 9; i <= 16; i++ {
		say(i)
	}
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("no second summary was asked for")
	}
	s.Must(204, s.Do("DELETE", "/v1/messages/"+ids[0], nil)) // OKAPI1, in the first summary
	release()

	// The log gets a summary made anew from the first message on (the one
	// being made when the message was deleted came in withdrawn, or was
	// refused when a message it holds changed too).
	var out string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the session's summaries: %s", out)
		}
	})
	testwait.Eventually(t, 30*time.Second, "a summary made anew without the deleted message", func() (bool, error) {
		_, out, _ = runCLI(t, s.URL, "events", "--stream", "summary-"+sid)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var e struct {
				Version int `json:"version"`
				Data    struct {
					FromSeq int    `json:"from_seq"`
					Content string `json:"content"`
				} `json:"data"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Version > first.Summary.Version && e.Data.FromSeq == 1 {
				if strings.Contains(e.Data.Content, "OKAPI1:") {
					return false, fmt.Errorf("the new summary holds the deleted message: %s", line)
				}
				return true, nil
			}
		}
		return false, nil
	})
	for _, q := range []string{"max_tokens=300&summary_share=0.9", "max_tokens=4000", ""} {
		if body := string(s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?"+q, nil)).Body); strings.Contains(body, "OKAPI1:") {
			t.Fatalf("window (%s) holds the deleted message: %s", q, body)
		}
	}
	if code, out, errOut := runCLI(t, s.URL, "projections", "verify", "context"); code != 0 {
		t.Fatalf("verify context: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, s.URL, "projections", "verify", "messages"); code != 0 {
		t.Fatalf("verify messages: %d %s %s", code, out, errOut)
	}
}

// summarizingServer starts a server whose summaries come from a chat
// endpoint that answers with the text it was sent, and holds its answer
// to the hold-th request (counting from 1) until release is called (or
// the test ends); inFlight is closed once that request arrived. It
// returns a session of a new user.
func summarizingServer(t *testing.T, hold int64) (s *testserver.Server, sid string, inFlight <-chan struct{}, release func()) {
	t.Helper()
	arrived, held := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if calls.Add(1) == hold {
			close(arrived)
			<-held
		}
		text := ""
		for _, m := range req.Messages {
			text += m.Content + " "
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "SUMMARY OF: " + text}}}})
	}))
	t.Cleanup(chat.Close)
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release) // before the endpoint closes, which waits for its answers
	s = testserver.Start(t, map[string]string{
		"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "100", "ARQ_SUMMARY_RECENT_TOKENS": "60",
		"ARQ_SUMMARIZER": "chat", "ARQ_SUMMARIZER_URL": chat.URL + "/v1",
	})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "summarized", "name": "S"})).Str("id")
	sid = s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	return s, sid, arrived, release
}

// noteSayer returns a function that appends note i to session sid and
// returns its id; each note names itself (OKAPIi:).
func noteSayer(s *testserver.Server, sid string) func(i int) string {
	return func(i int) string {
		return s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user",
			"content": fmt.Sprintf("Note OKAPI%d: the garden beds by the old stone wall need water before noon.", i)})).Str("id")
	}
}
