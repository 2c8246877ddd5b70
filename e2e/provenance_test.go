package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
)

// extraction writes as an extraction pass does, beside the server: the
// command service over the server's database, as a tenant's caller.
type extraction struct {
	t       *testing.T
	svc     *commands.Service
	store   *eventstore.Store
	meta    commands.Meta
	session string
	last    eventstore.Cursor
}

func newExtraction(t *testing.T, s *testserver.Server, tenant, session string) *extraction {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.MasterKey, cfg.DBMaxConns = s.URL, testdb.MasterKey, 4
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Parts: app.PartCommands})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return &extraction{t: t, svc: a.Commands(), store: a.Store(), session: session,
		meta: commands.Meta{RequestID: "extraction-run", Actor: "extractor", Scope: domain.Scope{Tenant: tenant}}}
}

// prov is a provenance of run that read msgs, each "id" at a version.
func (x *extraction) prov(run string, msgs ...domain.SourceMessage) *domain.Provenance {
	return &domain.Provenance{RunID: run, Extractor: "chat", Model: "test-model", PromptVersion: "p1", SessionID: x.session, Messages: msgs}
}

func (x *extraction) store1(user, content string, p *domain.Provenance, supersedes string) string {
	x.t.Helper()
	res, err := x.svc.StoreMemory(context.Background(), x.meta, user, domain.StoreMemory{Type: "semantic", Content: content,
		Provenance: p, Reason: "the user said so", Supersedes: supersedes})
	if err != nil {
		x.t.Fatal(err)
	}
	x.last = res.Cursor
	return res.ID
}

func (x *extraction) update(id, content string, p *domain.Provenance) {
	x.t.Helper()
	res, err := x.svc.UpdateMemory(context.Background(), x.meta, id, nil, domain.UpdateMemory{Content: &content, Provenance: p, Reason: "changed"})
	if err != nil {
		x.t.Fatal(err)
	}
	x.last = res.Cursor
}

// supersede marks memory id superseded by by, as the domain decides it,
// appended to the log as the extraction's command will (its command is
// not this test's).
func (x *extraction) supersede(id, by, tenant string, p *domain.Provenance) {
	x.t.Helper()
	ctx := context.Background()
	recs, err := x.store.ReadStream(ctx, domain.StreamID(domain.StreamMemory, id), 1)
	if err != nil {
		x.t.Fatal(err)
	}
	m := &domain.Memory{}
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			x.t.Fatal(err)
		}
		m.Apply(e, r.Version, r.RecordedAt)
	}
	events, err := m.Supersede(by, p, "replaced", time.Now())
	if err != nil {
		x.t.Fatal(err)
	}
	data, err := json.Marshal(events[0].Data)
	if err != nil {
		x.t.Fatal(err)
	}
	res, err := x.store.Append(ctx, eventstore.Stream{ID: domain.StreamID(domain.StreamMemory, id), Type: domain.StreamMemory},
		eventstore.Exactly(m.Version()), eventstore.Event{Type: events[0].Type, Data: data,
			Metadata: eventstore.Metadata{Actor: "extractor", CorrelationID: "extraction-run", Tenant: tenant}})
	if err != nil {
		x.t.Fatal(err)
	}
	x.last = res.Last().Cursor
}

// tenantWithConversation makes tenant with a key, a user, a session and
// two user messages.
func tenantWithConversation(t *testing.T, s *testserver.Server, tenant string) (a as, user, session, first, second string) {
	t.Helper()
	newTenant(s, tenant)
	key, _ := newKey(s, tenant, "", "read", "write")
	a = as{s, key}
	user = a.must(201, "POST", "/v1/users", map[string]any{"external_id": "u", "name": "U"}).Str("id")
	session = a.must(201, "POST", "/v1/users/"+user+"/sessions", map[string]any{}).Str("id")
	first = a.must(201, "POST", "/v1/sessions/"+session+"/messages", map[string]any{"role": "user", "content": "I moved to Lisbon"}).Str("id")
	second = a.must(201, "POST", "/v1/sessions/"+session+"/messages", map[string]any{"role": "user", "content": "I like green tea"}).Str("id")
	return a, user, session, first, second
}

func derivations(t *testing.T, r testserver.Response) []map[string]any {
	t.Helper()
	ds, ok := r.JSON["derivations"].([]any)
	if !ok {
		t.Fatalf("no derivations: %s", r.Body)
	}
	out := make([]map[string]any, len(ds))
	for i, d := range ds {
		out[i] = d.(map[string]any)
	}
	return out
}

func sources(d map[string]any) []map[string]any {
	var out []map[string]any
	for _, m := range d["messages"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

// A memory's provenance shows each change an extraction decided with the
// messages it read as they were then: a message edited since shows the
// text that was read. A message's derived memories list each memory
// event that read it. A client's memory has no derivations; another
// tenant's key, or a key narrowed to another user, finds neither.
func TestProvenanceAndDerivedMemoriesOverTheAPI(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	a, user, session, first, second := tenantWithConversation(t, s, "prov")
	x := newExtraction(t, s, "prov", session)
	lisbon := x.store1(user, "lives in Lisbon", x.prov("r1", domain.SourceMessage{ID: first, Seq: 1, Version: 1}), "")
	a.must(200, "PATCH", "/v1/messages/"+first, map[string]any{"content": "I moved to Porto"})
	x.update(lisbon, "lives in Porto", x.prov("r2", domain.SourceMessage{ID: first, Seq: 1, Version: 2}))
	faro := x.store1(user, "lives in Faro", x.prov("r3", domain.SourceMessage{ID: second, Seq: 2, Version: 1}), lisbon)
	x.supersede(lisbon, faro, "prov", x.prov("r3", domain.SourceMessage{ID: second, Seq: 2, Version: 1}))
	client := a.must(201, "POST", "/v1/users/"+user+"/memories", map[string]any{"type": "semantic", "content": "likes tea"}).Str("id")

	r := a.must(200, "GET", "/v1/memories/"+lisbon+"/provenance", nil)
	ds := derivations(t, r)
	if r.Str("memory_id") != lisbon || len(ds) != 3 {
		t.Fatalf("provenance: %s", r.Body)
	}
	for i, want := range []struct {
		action, run, text string
		version           float64
	}{{"add", "r1", "I moved to Lisbon", 1}, {"update", "r2", "I moved to Porto", 2}, {"superseded", "r3", "I like green tea", 1}} {
		d, src := ds[i], sources(ds[i])
		if d["action"] != want.action || d["run_id"] != want.run || d["extractor"] != "chat" || d["model"] != "test-model" ||
			d["prompt_version"] != "p1" || d["actor"] != "extractor" || d["request_id"] != "extraction-run" || d["reason"] == "" ||
			len(src) != 1 || src[0]["content"] != want.text || src[0]["version"] != want.version || src[0]["role"] != "user" ||
			src[0]["session_id"] != session || src[0]["erased"] != false {
			t.Errorf("derivation %d: %v; want %s by %s, reading %q", i, d, want.action, want.run, want.text)
		}
	}
	if ds[2]["superseded_by"] != faro {
		t.Errorf("the supersession names %v, want %s", ds[2]["superseded_by"], faro)
	}
	if d := derivations(t, a.must(200, "GET", "/v1/memories/"+faro+"/provenance", nil)); len(d) != 1 || d[0]["action"] != "supersede" || d[0]["supersedes"] != lisbon {
		t.Errorf("provenance of the replacing memory: %v", d)
	}
	if d := derivations(t, a.must(200, "GET", "/v1/memories/"+client+"/provenance", nil)); len(d) != 0 {
		t.Errorf("a client's memory has derivations: %v", d)
	}

	derived := a.must(200, "GET", "/v1/messages/"+first+"/derived", nil, "X-Arq-Min-Position", x.last.String())
	items := derived.Items()
	if derived.Str("message_id") != first || len(items) != 2 {
		t.Fatalf("derived from the first message: %s", derived.Body)
	}
	for i, want := range []struct {
		action  string
		version float64
	}{{"add", 1}, {"update", 2}} {
		it := items[i]
		if it["memory_id"] != lisbon || it["action"] != want.action || it["memory_version"] != want.version || it["message_version"] != want.version ||
			it["live"] != false || it["content"] != nil {
			t.Errorf("derived item %d: %v", i, it)
		}
	}
	items = a.must(200, "GET", "/v1/messages/"+second+"/derived", nil).Items()
	if len(items) != 2 || items[0]["memory_id"] != faro || items[0]["live"] != true || items[0]["content"] != "lives in Faro" ||
		items[1]["memory_id"] != lisbon || items[1]["action"] != "superseded" {
		t.Errorf("derived from the second message: %v", items)
	}

	// Another tenant, and a key narrowed to another user, find nothing.
	newTenant(s, "elsewhere")
	otherKey, _ := newKey(s, "elsewhere", "", "read", "write")
	other := a.must(201, "POST", "/v1/users", map[string]any{"external_id": "other", "name": "O"}).Str("id")
	narrowed, _ := newKey(s, "prov", other, "read", "write")
	for _, key := range []string{otherKey, narrowed} {
		for _, path := range []string{"/v1/memories/" + lisbon + "/provenance", "/v1/messages/" + first + "/derived"} {
			isProblem(t, as{s, key}.do("GET", path, nil), 404, "")
		}
		isProblem(t, as{s, key}.do("DELETE", "/v1/messages/"+first+"?cascade=derived", nil), 404, "")
	}
	isProblem(t, a.do("GET", "/v1/memories/"+domain.NewID().String()+"/provenance", nil), 404, "")
}

// cascadeFixture is a conversation of two messages and memories: stored
// by an extraction from the first (one), from the second (two), from
// both (both); a client's memory an extraction updated from the first
// (client).
type cascadeFixture struct {
	a                      as
	user, first, second    string
	one, two, both, client string
	x                      *extraction
}

func newCascade(t *testing.T, tenant string) cascadeFixture {
	t.Helper()
	s := startTenanted(t, nil)
	var f cascadeFixture
	var session string
	f.a, f.user, session, f.first, f.second = tenantWithConversation(t, s, tenant)
	f.x = newExtraction(t, s, tenant, session)
	first, second := domain.SourceMessage{ID: f.first, Seq: 1, Version: 1}, domain.SourceMessage{ID: f.second, Seq: 2, Version: 1}
	f.one = f.x.store1(f.user, "lives in Lisbon", f.x.prov("r1", first), "")
	f.two = f.x.store1(f.user, "likes green tea", f.x.prov("r1", second), "")
	f.both = f.x.store1(f.user, "drinks tea in Lisbon", f.x.prov("r1", first, second), "")
	f.client = f.a.must(201, "POST", "/v1/users/"+f.user+"/memories", map[string]any{"type": "semantic", "content": "lives in Europe"}).Str("id")
	f.x.update(f.client, "lives in Portugal", f.x.prov("r2", first))
	return f
}

func (f cascadeFixture) live(t *testing.T, id string) bool {
	t.Helper()
	switch r := f.a.do("GET", "/v1/memories/"+id, nil); r.Status {
	case 200:
		return true
	case 404:
		return false
	default:
		t.Fatalf("GET memory %s: %d %s", id, r.Status, r.Body)
	}
	return false
}

// DELETE of a message with cascade=derived deletes the memories an
// extraction stored from it, and only those: not one stored from another
// message, not a client's an extraction updated from it. A bad cascade is
// 422; a stale If-Match (the message's) deletes nothing.
func TestCascadeDeletesTheMemoriesDerivedFromAMessage(t *testing.T) {
	t.Parallel()
	f := newCascade(t, "cascade")
	isProblem(t, f.a.do("DELETE", "/v1/messages/"+f.first+"?cascade=all", nil), 422, "cascade")
	isProblem(t, f.a.do("DELETE", "/v1/messages/"+f.first+"?cascade=derived", nil, "If-Match", `"7"`), 412, "")
	for _, id := range []string{f.one, f.two, f.both, f.client} {
		if !f.live(t, id) {
			t.Fatalf("memory %s went with a refused cascade", id)
		}
	}
	r := f.a.must(204, "DELETE", "/v1/messages/"+f.first+"?cascade=derived&reason=wrong", nil, "If-Match", `"1"`)
	if r.Header.Get("X-Arq-Position") == "" {
		t.Error("no X-Arq-Position")
	}
	for id, want := range map[string]bool{f.one: false, f.both: false, f.two: true, f.client: true} {
		if got := f.live(t, id); got != want {
			t.Errorf("memory %s live: %v, want %v", id, got, want)
		}
	}
	isProblem(t, f.a.do("GET", "/v1/messages/"+f.first, nil), 404, "")
	// What was derived is still told, and the provenance still read.
	items := f.a.must(200, "GET", "/v1/messages/"+f.first+"/derived", nil, "X-Arq-Min-Position", f.x.last.String()).Items()
	lives := map[any]any{}
	for _, it := range items {
		lives[it["memory_id"]] = it["live"]
	}
	if len(items) != 3 || lives[f.one] != false || lives[f.both] != false || lives[f.client] != true {
		t.Errorf("derived after the cascade: %v", items)
	}
	if d := derivations(t, f.a.must(200, "GET", "/v1/memories/"+f.one+"/provenance", nil)); len(d) != 1 || sources(d[0])[0]["redacted"] != true ||
		sources(d[0])[0]["content"] != "I moved to Lisbon" {
		t.Errorf("provenance of a deleted derived memory: %v", d)
	}
}

// With erase=true, cascade=derived erases the memories an extraction
// stored from the message, then the message; a client's memory stays.
// An erasure takes no If-Match. A memory whose user is erased answers its
// provenance as its history.
func TestCascadeEraseErasesTheDerivedMemories(t *testing.T) {
	t.Parallel()
	f := newCascade(t, "erasing")
	isProblem(t, f.a.do("DELETE", "/v1/messages/"+f.first+"?erase=true&cascade=derived", nil, "If-Match", `"1"`), 400, "")
	f.a.must(204, "DELETE", "/v1/messages/"+f.first+"?erase=true&cascade=derived", nil)
	for id, want := range map[string]bool{f.one: false, f.both: false, f.two: true, f.client: true} {
		if got := f.live(t, id); got != want {
			t.Errorf("memory %s live: %v, want %v", id, got, want)
		}
	}
	d := derivations(t, f.a.must(200, "GET", "/v1/memories/"+f.one+"/provenance", nil))
	if len(d) != 1 || d[0]["erased"] != true || d[0]["reason"] != "" || sources(d[0])[0]["erased"] != true || sources(d[0])[0]["content"] != "" {
		t.Errorf("provenance of an erased derived memory: %v", d)
	}
	// The client's memory still tells what it was updated from, erased.
	d = derivations(t, f.a.must(200, "GET", "/v1/memories/"+f.client+"/provenance", nil))
	if len(d) != 1 || d[0]["action"] != "update" || sources(d[0])[0]["erased"] != true {
		t.Errorf("provenance of the client's memory: %v", d)
	}
	// Again: harmless.
	f.a.must(204, "DELETE", "/v1/messages/"+f.first+"?erase=true&cascade=derived", nil)

	f.a.must(200, "POST", "/v1/users/"+f.user+"/erase", nil)
	h, p := f.a.do("GET", "/v1/memories/"+f.two+"/history", nil), f.a.do("GET", "/v1/memories/"+f.two+"/provenance", nil)
	if h.Status != p.Status {
		t.Fatalf("an erased user's memory: history %d, provenance %d %s", h.Status, p.Status, p.Body)
	}
	if p.Status == 200 {
		if d := derivations(t, p); len(d) != 1 || d[0]["erased"] != true || sources(d[0])[0]["erased"] != true {
			t.Errorf("provenance of an erased user's memory: %v", d)
		}
	}
}
