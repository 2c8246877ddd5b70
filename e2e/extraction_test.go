package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/fakellm"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// extractionEnv configures a server that extracts memories with the fake
// model at llm, looking for due sessions every 20ms.
func extractionEnv(llm *fakellm.Server, more map[string]string) map[string]string {
	env := map[string]string{
		"ARQ_BACKGROUND_INTERVAL": "20ms", "ARQ_EXTRACTOR": "chat", "ARQ_EXTRACTOR_URL": llm.URL,
		"ARQ_EXTRACTOR_MODEL": "fake-1", "ARQ_EXTRACTOR_API_KEY": "sk-test",
	}
	for k, v := range more {
		env[k] = v
	}
	return env
}

// memoryTexts lists a user's live memories' contents, sorted.
func memoryTexts(s *testserver.Server, uid string) []string {
	var out []string
	for _, m := range s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?limit=100", nil)).Items() {
		out = append(out, m["content"].(string))
	}
	sort.Strings(out)
	return out
}

// memoryID finds the id of the user's live memory with content.
func memoryID(t *testing.T, s *testserver.Server, uid, content string) string {
	t.Helper()
	for _, m := range s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?limit=100", nil)).Items() {
		if m["content"] == content {
			return m["id"].(string)
		}
	}
	t.Fatalf("no memory %q among %v", content, memoryTexts(s, uid))
	return ""
}

// runs lists the session's extraction runs in the log, from its user's
// extraction stream.
func runs(s *testserver.Server, uid, sid string) []map[string]any {
	var out []map[string]any
	for _, e := range s.Must(200, s.Do("GET", "/v1/events?type=session.extracted&stream=extraction-"+uid+"&limit=1000", nil)).Items() {
		if e["data"].(map[string]any)["session_id"] == sid {
			out = append(out, e)
		}
	}
	return out
}

// say appends a user message to a session and returns its id.
func say(s *testserver.Server, sid, content string) string {
	return s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content})).Str("id")
}

// A conversation yields memories with provenance; a repeated fact changes
// nothing, an added detail updates the memory, a contradicting fact
// supersedes it with its history kept, and every decision is in the log
// with the extractor as its actor.
func TestExtractionFromAConversation(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	s := testserver.Start(t, extractionEnv(llm, nil))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ex", "name": "Ex"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	first := say(s, sid, "Hello. My city is Berlin. My favourite food is pizza.")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": "Nice to meet you."}))
	want := []string{"User's city is Berlin", "User's favourite food is pizza"}
	testwait.Eventually(t, 30*time.Second, "the memories of the first turn", func() (bool, error) {
		return slices.Equal(memoryTexts(s, uid), want), nil
	})
	berlin := memoryID(t, s, uid, "User's city is Berlin")
	hist := s.Must(200, s.Do("GET", "/v1/memories/"+berlin+"/history", nil)).Items()
	if len(hist) != 1 || hist[0]["actor"] != "system:extractor" {
		t.Fatalf("history of an extracted memory: %v", hist)
	}
	stored := s.Must(200, s.Do("GET", "/v1/events?stream=memory-"+berlin, nil)).Items()
	data := stored[0]["data"].(map[string]any)
	prov, _ := data["provenance"].(map[string]any)
	if prov == nil || prov["extractor"] != "chat" || prov["model"] != "fake-1" || prov["prompt_version"] == "" || prov["session_id"] != sid {
		t.Fatalf("provenance of the stored memory: %v", data)
	}
	msgs := prov["messages"].([]any)
	if len(msgs) < 1 || msgs[0].(map[string]any)["id"] != first || msgs[0].(map[string]any)["version"] != float64(1) {
		t.Fatalf("the messages read: %v", msgs)
	}
	if data["reason"] == "" || data["reason"] == nil {
		t.Fatalf("no reason with the stored memory: %v", data)
	}
	if stored[0]["metadata"].(map[string]any)["correlation_id"] != prov["run_id"] {
		t.Fatalf("the run id is not the events' correlation id: %v", stored[0])
	}

	// Provenance shows the message as the model read it, after an edit
	// too, and the message names what was derived from it.
	s.Must(200, s.Do("PATCH", "/v1/messages/"+first, map[string]any{"content": "Hello."}))
	derivs := s.Must(200, s.Do("GET", "/v1/memories/"+berlin+"/provenance", nil)).JSON["derivations"].([]any)
	read := derivs[0].(map[string]any)["messages"].([]any)[0].(map[string]any)
	if len(derivs) != 1 || read["content"] != "Hello. My city is Berlin. My favourite food is pizza." || read["version"] != float64(1) {
		t.Fatalf("provenance after an edit: %v", derivs)
	}
	fromFirst := []string{berlin, memoryID(t, s, uid, "User's favourite food is pizza")}
	slices.Sort(fromFirst)
	// The provenance projection is deferred: it applies within its idle
	// poll (a second), as no command waits for it.
	testwait.Eventually(t, 10*time.Second, "the memories derived from the first message", func() (bool, error) {
		var derived []string
		for _, it := range s.Must(200, s.Do("GET", "/v1/messages/"+first+"/derived", nil)).Items() {
			derived = append(derived, it["memory_id"].(string))
		}
		slices.Sort(derived)
		return slices.Equal(derived, fromFirst), nil
	})

	// The same fact again: a run, and nothing new.
	say(s, sid, "My city is Berlin.")
	testwait.Eventually(t, 30*time.Second, "the second run", func() (bool, error) { return len(runs(s, uid, sid)) == 2, nil })
	if got := memoryTexts(s, uid); !slices.Equal(got, want) {
		t.Fatalf("a repeated fact changed the memories: %v", got)
	}
	decisions := runs(s, uid, sid)[1]["data"].(map[string]any)["decisions"].([]any)
	if len(decisions) != 1 || decisions[0].(map[string]any)["action"] != "none" {
		t.Fatalf("the second run's decisions: %v", decisions)
	}

	// A detail updates; a contradiction supersedes.
	pizza := memoryID(t, s, uid, "User's favourite food is pizza")
	say(s, sid, "My favourite food is also pasta. My city is Paris.")
	want = []string{"User's city is Paris", "User's favourite food is pizza and pasta"}
	testwait.Eventually(t, 30*time.Second, "the update and the supersession", func() (bool, error) {
		return slices.Equal(memoryTexts(s, uid), want), nil
	})
	if got := memoryID(t, s, uid, "User's favourite food is pizza and pasta"); got != pizza {
		t.Fatalf("the update made memory %s, not a change of %s", got, pizza)
	}
	s.Must(404, s.Do("GET", "/v1/memories/"+berlin, nil))
	hist = s.Must(200, s.Do("GET", "/v1/memories/"+berlin+"/history", nil)).Items()
	if len(hist) != 2 || hist[1]["event_type"] != "memory.superseded" {
		t.Fatalf("history of the superseded memory: %v", hist)
	}
	before := hist[0]["recorded_at"].(string)
	then := s.Must(200, s.Do("GET", "/v1/memories/"+berlin+"?as_of="+before, nil))
	if then.Str("content") != "User's city is Berlin" {
		t.Fatalf("the superseded memory as of before: %s", then.Body)
	}
	paris := memoryID(t, s, uid, "User's city is Paris")
	sup := s.Must(200, s.Do("GET", "/v1/events?stream=memory-"+berlin, nil)).Items()[1]["data"].(map[string]any)
	if sup["superseded_by"] != paris || sup["valid_until"] == nil {
		t.Fatalf("the supersession: %v", sup)
	}

	// Deleting the first message with what was derived from it takes
	// the memory stored from it (updated since from another message),
	// not the one stored from a later message, nor a client's.
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "A note of the client's"}))
	r := s.Must(204, s.Do("DELETE", "/v1/messages/"+first+"?cascade=derived", nil))
	want = []string{"A note of the client's", "User's city is Paris"}
	if got := memoryTexts(s, uid); !slices.Equal(got, want) {
		t.Fatalf("after the cascade (position %s): %v, want %v", r.Header.Get("X-Arq-Position"), got, want)
	}
}

// A malformed answer changes nothing and is tried again; a failing or
// slow endpoint blocks no command; once the model answers, the messages
// are extracted.
func TestExtractionRefusesMalformedAnswersAndSurvivesOutages(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	llm.Script(fakellm.StepCandidates, fakellm.Always, fakellm.Reply{Content: `{"candidates":[{"type":"belief","content":"x","importance":2,"tags":[]}]}`})
	s := testserver.Start(t, extractionEnv(llm, map[string]string{"ARQ_EXTRACT_TIMEOUT": "300ms"}))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "mal", "name": "Mal"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	say(s, sid, "My dog is Rex.")
	testwait.Eventually(t, 30*time.Second, "the malformed answer tried twice", func() (bool, error) {
		return llm.Calls(fakellm.StepCandidates) >= 2, nil
	})
	if got := memoryTexts(s, uid); len(got) != 0 || len(runs(s, uid, sid)) != 0 {
		t.Fatalf("a malformed answer changed something: memories %v, runs %d", got, len(runs(s, uid, sid)))
	}
	if !strings.Contains(s.Logs.String(), "extractor's answer refused") {
		t.Fatalf("the refusal is not logged: %s", s.Logs)
	}
	if strings.Contains(s.Logs.String(), "My dog") || strings.Contains(s.Logs.String(), "Rex") {
		t.Fatalf("the log holds the user's text: %s", s.Logs)
	}

	// Slow, then failing: commands and reads go on.
	llm.Reset()
	llm.Script("", fakellm.Always, fakellm.Reply{Delay: time.Minute})
	calls := llm.Calls(fakellm.StepCandidates)
	say(s, sid, "My cat is Tom.")
	testwait.Eventually(t, 30*time.Second, "a slow call cut short", func() (bool, error) {
		return llm.Calls(fakellm.StepCandidates) > calls+1, nil
	})
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context", nil))
	llm.Reset()
	llm.Script("", fakellm.Always, fakellm.Reply{Status: 500, Body: `{"error":{"message":"down"}}`})
	calls = llm.Calls(fakellm.StepCandidates)
	say(s, sid, "My bird is Tweety.")
	testwait.Eventually(t, 30*time.Second, "a failing call tried again", func() (bool, error) {
		return llm.Calls(fakellm.StepCandidates) > calls+1, nil
	})
	if got := memoryTexts(s, uid); len(got) != 0 {
		t.Fatalf("a failing endpoint changed something: %v", got)
	}

	llm.Reset()
	want := []string{"User's bird is Tweety", "User's cat is Tom", "User's dog is Rex"}
	testwait.Eventually(t, 60*time.Second, "the messages extracted once the model answers", func() (bool, error) {
		return slices.Equal(memoryTexts(s, uid), want), nil
	})
	if n := len(runs(s, uid, sid)); n != 1 {
		t.Fatalf("%d runs recorded; want the one that read all three messages", n)
	}
}

// Two processes extract each message once: every message is read by one
// recorded run, and a fact said in every session of a user, to both
// processes at once, is stored once.
func TestExtractionRunsOncePerMessageAcrossProcesses(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	url := testdb.New(t)
	a := testserver.StartOn(t, url, extractionEnv(llm, nil))
	b := testserver.StartOn(t, url, extractionEnv(llm, nil))
	uid := a.Must(201, a.Do("POST", "/v1/users", map[string]any{"external_id": "two", "name": "Two"})).Str("id")
	const sessions, turns = 4, 3
	var sids []string
	var want []string
	for i := range sessions {
		sid := a.Must(201, a.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
		sids = append(sids, sid)
		for j := range turns {
			srv := a
			if j%2 == 1 {
				srv = b
			}
			say(srv, sid, fmt.Sprintf("My thing %d %d is value %d. My city is Rome.", i, j, i*10+j))
			want = append(want, fmt.Sprintf("User's thing %d %d is value %d", i, j, i*10+j))
		}
	}
	want = append(want, "User's city is Rome")
	sort.Strings(want)
	testwait.Eventually(t, 60*time.Second, "every fact extracted", func() (bool, error) {
		return slices.Equal(memoryTexts(a, uid), want), nil
	})
	for _, sid := range sids {
		seen := map[string]int{}
		for _, r := range runs(a, uid, sid) {
			for _, m := range r["data"].(map[string]any)["messages"].([]any) {
				seen[m.(map[string]any)["id"].(string)]++
			}
		}
		if len(seen) != turns {
			t.Fatalf("session %s: runs read %d messages, want %d", sid, len(seen), turns)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("session %s: message %s read by %d runs", sid, id, n)
			}
		}
	}
}

// A message edited while the model reads it is not extracted from its
// old text: the run is refused, and the next one reads the new text.
func TestExtractionNeverRecordsAnEditedMessagesOldText(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	llm.Script(fakellm.StepCandidates, 1, fakellm.Reply{Delay: 2 * time.Second})
	s := testserver.Start(t, extractionEnv(llm, nil))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ed", "name": "Ed"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mid := say(s, sid, "My car is red.")
	testwait.Eventually(t, 30*time.Second, "the model reading the message", func() (bool, error) {
		return llm.Calls(fakellm.StepCandidates) >= 1, nil
	})
	s.Must(200, s.Do("PATCH", "/v1/messages/"+mid, map[string]any{"content": "My car is blue."}))
	testwait.Eventually(t, 30*time.Second, "the edited text extracted", func() (bool, error) {
		return slices.Equal(memoryTexts(s, uid), []string{"User's car is blue"}), nil
	})
	for _, r := range runs(s, uid, sid) {
		for _, m := range r["data"].(map[string]any)["messages"].([]any) {
			if m.(map[string]any)["version"] != float64(2) {
				t.Fatalf("a run recorded the message at version %v", m.(map[string]any)["version"])
			}
		}
	}
}

// Erasing a message erases the extraction runs that read it (the model's
// candidates and reasons, which came from its text) and leaves the other
// runs readable; erasing the user erases all of theirs.
func TestErasureReachesTheExtractionRuns(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	s := testserver.Start(t, extractionEnv(llm, nil))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "er", "name": "Er"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	secret := say(s, sid, "My secret is swordfish.")
	testwait.Eventually(t, 30*time.Second, "the first run", func() (bool, error) { return len(runs(s, uid, sid)) == 1, nil })
	say(s, sid, "My colour is teal.")
	testwait.Eventually(t, 30*time.Second, "the second run", func() (bool, error) { return len(runs(s, uid, sid)) == 2, nil })
	s.Must(204, s.Do("DELETE", "/v1/messages/"+secret+"?erase=true", nil))
	got := runs(s, uid, sid)
	if got[0]["erased"] != true || got[0]["data"].(map[string]any)["decisions"] != nil {
		t.Fatalf("the run that read the erased message: %v", got[0])
	}
	if got[1]["erased"] == true || got[1]["data"].(map[string]any)["decisions"] == nil {
		t.Fatalf("the other run: %v", got[1])
	}
	if body := string(s.Must(200, s.Do("GET", "/v1/events?stream=extraction-"+uid, nil)).Body); strings.Contains(body, "swordfish") {
		t.Fatalf("the log still hands out the erased text: %s", body)
	}
	s.Must(200, s.Do("POST", "/v1/users/"+uid+"/erase", nil))
	for _, r := range runs(s, uid, sid) {
		if r["erased"] != true {
			t.Fatalf("a run of an erased user: %v", r)
		}
	}
}

// A run reads at most 50 messages; a session with more waiting is read
// in runs of 50 in order, also when the first 50 hold no user message,
// until its user's words are reached.
func TestExtractionReadsALongBacklogInRuns(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	s := testserver.Start(t, extractionEnv(llm, nil))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "long", "name": "Long"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	var batch []map[string]any
	for i := range 55 {
		batch = append(batch, map[string]any{"role": "assistant", "content": fmt.Sprintf("Note %d.", i)})
	}
	batch = append(batch, map[string]any{"role": "user", "content": "My dog is Rex."})
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}))
	testwait.Eventually(t, 30*time.Second, "the user's words extracted", func() (bool, error) {
		return slices.Equal(memoryTexts(s, uid), []string{"User's dog is Rex"}), nil
	})
	got := runs(s, uid, sid)
	if len(got) != 2 {
		t.Fatalf("%d runs; want one of 50 messages and one of the 6 after", len(got))
	}
	for i, want := range [][2]float64{{1, 50}, {51, 56}} {
		d := got[i]["data"].(map[string]any)
		if d["from_seq"] != want[0] || d["to_seq"] != want[1] {
			t.Fatalf("run %d read %v..%v; want %v..%v", i, d["from_seq"], d["to_seq"], want[0], want[1])
		}
	}
}
